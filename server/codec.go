package server

import (
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonCodec is connect's JSON codec with error messages that never repeat
// the input: protojson quotes the offending value, which may be a secret.
// It is registered under both names connect uses for JSON.
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
	if err := (protojson.UnmarshalOptions{}).Unmarshal(b, msg); err != nil {
		return errors.New(describeJSONError(err.Error()))
	}
	return nil
}

// describeJSONError keeps the kind of problem and its position, and drops
// any quoted input.
func describeJSONError(msg string) string {
	pos := jsonPosition.FindString(msg)
	switch {
	case strings.Contains(msg, "unknown field"):
		return "invalid JSON: unknown field " + pos
	case strings.Contains(msg, "syntax error"):
		return "invalid JSON: syntax error " + pos
	case strings.Contains(msg, "invalid value"):
		return "invalid JSON: a field has a value of the wrong type or format " + pos
	}
	return "invalid JSON request " + pos
}

// checkGetMessage answers 400 to Connect GET requests whose base64 message
// does not decode (connect-go would report those as code unknown, HTTP 500).
func checkGetMessage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

func decodesBase64(s string) bool {
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if _, err := enc.DecodeString(s); err == nil {
			return true
		}
	}
	return false
}
