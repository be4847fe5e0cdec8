// Package connectguard holds what every Connect handler of twilioguard
// uses: a JSON codec whose errors never repeat the input (which may hold a
// secret) and which ignores unknown fields as the binary codec does, so
// newer clients keep working against older servers ([HandlerOptions]); and
// a wrapper ([Guard]) that answers 400, not connect's 500 "unknown", to
// requests whose body cannot be read (a broken chunked encoding, a body
// shorter than its Content-Length) or whose Connect GET message does not
// decode.
package connectguard

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// HandlerOptions returns the codec options: the JSON codec under both names
// connect uses for JSON.
func HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
	}
}

// jsonCodec is connect's JSON codec with error messages that never repeat
// the input (protojson quotes the offending value, which may be a secret),
// and that ignores unknown fields like the binary codec.
type jsonCodec struct{ name string }

var _ connect.Codec = jsonCodec{}

var jsonPosition = regexp.MustCompile(`\(line \d+:\d+\)`)

func (c jsonCodec) Name() string { return c.name }

func (jsonCodec) Marshal(m any) ([]byte, error) {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil, errors.New("json codec: not a proto message")
	}
	return protojson.Marshal(msg)
}

func (jsonCodec) Unmarshal(b []byte, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return errors.New("json codec: not a proto message")
	}
	if len(b) == 0 {
		return errors.New("empty request body: want a JSON object")
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, msg); err != nil {
		return errors.New(describeJSONError(err.Error()))
	}
	return nil
}

// describeJSONError keeps the kind of problem and its position, and drops
// any quoted input.
func describeJSONError(msg string) string {
	pos := jsonPosition.FindString(msg)
	switch {
	case strings.Contains(msg, "syntax error"):
		return "invalid JSON: syntax error " + pos
	case strings.Contains(msg, "invalid value"):
		return "invalid JSON: a field has a value of the wrong type or format " + pos
	}
	return "invalid JSON request " + pos
}

// Guard wraps a Connect handler: a request body that fails to read is an
// InvalidArgument error (HTTP 400) instead of connect's Unknown (500), and a
// Connect GET whose base64 message does not decode gets 400.
func Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = readErrors{r.Body}
		}
		if r.Method == http.MethodGet {
			q := r.URL.Query()
			if q.Get("base64") == "1" {
				if !decodesBase64(q.Get("message")) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"code":"invalid_argument","message":"message query parameter is not valid base64"}`))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// readErrors turns a body's read errors into InvalidArgument connect
// errors, which connect-go passes on as they are. io.EOF and the limit error
// of http.MaxBytesReader (which connect reports itself) are kept.
type readErrors struct{ io.ReadCloser }

func (b readErrors) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if !errors.As(err, &tooLarge) {
			err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("read request body: %w", err))
		}
	}
	return n, err
}

func decodesBase64(s string) bool {
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if _, err := enc.DecodeString(s); err == nil {
			return true
		}
	}
	return false
}
