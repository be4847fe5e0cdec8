package forwardauth_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// traefikForwardAuth does with a request what Traefik's forwardAuth
// middleware does (Traefik v3: the forwardAuth reference at
// https://doc.traefik.io/traefik/reference/routing-configuration/http/middlewares/forwardauth/
// and pkg/middlewares/auth/forward.go), so that twilioguard gets the auth
// requests Traefik sends without Traefik installed:
//
//   - the auth request is a GET to the address; with forwardBody the
//     client's body (up to maxBodySize, else 401 from Traefik) goes with it
//     and, as Traefik sets no length, is sent chunked;
//   - it carries the client's headers (only authRequestHeaders when set)
//     minus hop-by-hop ones, then X-Forwarded-For, -Method, -Proto (from the
//     TLS state), -Host and -Uri set by Traefik itself (trustForwardHeader
//     false);
//   - a 2xx answer lets the request go on, after removing the request
//     headers authResponseHeadersRegex matches and copying the answer's
//     headers it matches; any other answer (headers, status and body) goes
//     back to the client; an unreachable address is a 500.
type traefikForwardAuth struct {
	Address                  string   `yaml:"address"`
	ForwardBody              bool     `yaml:"forwardBody"`
	MaxBodySize              *int64   `yaml:"maxBodySize"`
	AuthRequestHeaders       []string `yaml:"authRequestHeaders"`
	AuthResponseHeadersRegex string   `yaml:"authResponseHeadersRegex"`
	TrustForwardHeader       bool     `yaml:"trustForwardHeader"`

	next   http.Handler
	client *http.Client
}

// traefikHopHeaders are removed from the auth request.
var traefikHopHeaders = []string{"Connection", "Keep-Alive", "Te", "Trailers", "Transfer-Encoding", "Upgrade"}

func (fa *traefikForwardAuth) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	authReq, err := http.NewRequestWithContext(req.Context(), http.MethodGet, fa.Address, nil)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if fa.ForwardBody {
		max := int64(-1)
		if fa.MaxBodySize != nil {
			max = *fa.MaxBodySize
		}
		r := io.Reader(req.Body)
		if max >= 0 {
			r = io.LimitReader(req.Body, max+1)
		}
		b, err := io.ReadAll(r)
		switch {
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
			return
		case max >= 0 && int64(len(b)) > max:
			w.WriteHeader(http.StatusUnauthorized)
			return
		case len(b) > 0:
			req.Body = io.NopCloser(bytes.NewReader(b))
			authReq.Body = io.NopCloser(bytes.NewReader(b))
		}
	}

	for k, vs := range req.Header {
		authReq.Header[k] = append([]string(nil), vs...)
	}
	for _, c := range authReq.Header.Values("Connection") {
		for f := range strings.SplitSeq(c, ",") {
			authReq.Header.Del(strings.TrimSpace(f))
		}
	}
	for _, h := range traefikHopHeaders {
		authReq.Header.Del(h)
	}
	if len(fa.AuthRequestHeaders) > 0 {
		kept := http.Header{}
		for _, name := range fa.AuthRequestHeaders {
			if vs := authReq.Header.Values(name); len(vs) > 0 {
				kept[http.CanonicalHeaderKey(name)] = append([]string(nil), vs...)
			}
		}
		authReq.Header = kept
	}
	if ip, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		authReq.Header.Set("X-Forwarded-For", ip)
	}
	authReq.Header.Set("X-Forwarded-Method", req.Method)
	proto := "http"
	if req.TLS != nil {
		proto = "https"
	}
	authReq.Header.Set("X-Forwarded-Proto", proto)
	authReq.Header.Set("X-Forwarded-Host", req.Host)
	authReq.Header.Set("X-Forwarded-Uri", req.URL.RequestURI())

	resp, err := fa.client.Do(authReq)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		for _, h := range traefikHopHeaders {
			w.Header().Del(h)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
		return
	}
	if fa.AuthResponseHeadersRegex != "" {
		re := regexp.MustCompile(fa.AuthResponseHeadersRegex)
		for k := range req.Header {
			if re.MatchString(k) {
				req.Header.Del(k)
			}
		}
		for k, vs := range resp.Header {
			if re.MatchString(k) {
				req.Header[k] = append([]string(nil), vs...)
			}
		}
	}
	req.RequestURI = req.URL.RequestURI()
	fa.next.ServeHTTP(w, req)
}

// start checks the configuration as Traefik would and sets the client.
func (fa *traefikForwardAuth) start(next http.Handler) error {
	if fa.Address == "" {
		return errors.New("forwardAuth: no address")
	}
	if fa.AuthResponseHeadersRegex != "" {
		if _, err := regexp.Compile(fa.AuthResponseHeadersRegex); err != nil {
			return err
		}
	}
	fa.next = next
	fa.client = &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return nil
}
