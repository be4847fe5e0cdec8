package signature_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/twilioguard/twilioguard/signature"
)

func TestRequestTargetWithoutRequestURI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  *url.URL
		want string
	}{
		{&url.URL{Path: "/a b", RawPath: ""}, "/a%20b"},
		{&url.URL{Path: "/a/b", RawPath: "/a%2Fb"}, "/a%2Fb"},
		{&url.URL{Path: "/sms", RawQuery: "x=%7e+1"}, "/sms?x=%7e+1"},
		{&url.URL{Path: "/sms", ForceQuery: true}, "/sms?"},
		{&url.URL{}, "/"},
	}
	for _, tt := range tests {
		if got := signature.RequestTarget(&http.Request{URL: tt.url}); got != tt.want {
			t.Errorf("signature.RequestTarget(%#v) = %q; want %q", tt.url, got, tt.want)
		}
	}
}
