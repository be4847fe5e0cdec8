# syntax=docker/dockerfile:1
# Build: docker build -t twilioguard .
# Run:   docker run -p 8080:8080 -v twilioguard:/data twilioguard
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/twilioguard ./cmd/twilioguard \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/twilioguard /twilioguard
COPY --from=build --chown=65532:65532 /out/data /data
ENV TWILIOGUARD_ADDR=:8080 \
    TWILIOGUARD_DATA_DIR=/data \
    TWILIOGUARD_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/twilioguard"]
CMD ["serve"]
