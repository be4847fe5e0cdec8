package twilioapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is an error answer of Twilio's REST API, after any retries.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code and Message are Twilio's error code and message, when the
	// answer carried them.
	Code    int
	Message string
	// Method, Host and Path name the request (never its query).
	Method, Host, Path string
	// Attempts is how many times the request was sent.
	Attempts int
	// RetryAfter is Twilio's Retry-After, when it asked for one.
	RetryAfter time.Duration
}

// Error says what Twilio answered and what to do about it.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Twilio answered %d %s to %s %s%s", e.Status, http.StatusText(e.Status), e.Method, e.Host, e.Path)
	if e.Code != 0 || e.Message != "" {
		fmt.Fprintf(&b, " (error %d: %s)", e.Code, e.Message)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		b.WriteString(": the credentials were refused; check " + EnvAccountSID + " and " + EnvAuthToken +
			" (or " + EnvAPIKey + " and " + EnvAPISecret + ")")
	case e.Status == http.StatusForbidden:
		b.WriteString(": these credentials may not do this (a subaccount's or a Standard API key's cannot list other accounts or read auth tokens)")
	case e.Status == http.StatusNotFound:
		b.WriteString(": not found (a wrong account SID, or an account these credentials do not own)")
	case e.Status == http.StatusTooManyRequests && e.RetryAfter > 0:
		fmt.Fprintf(&b, ": rate limited; try again in %s", e.RetryAfter)
	case e.Status == http.StatusTooManyRequests:
		b.WriteString(": rate limited; try again later")
	case e.Status >= 500:
		b.WriteString(": Twilio had a problem; try again later")
	}
	return b.String()
}

// transport sends twilio-go's requests: to Options.APIURL when set, and
// again after a 429 (any method) or a 5xx answer to a read, waiting as
// Twilio asks. An answer of 400 or more becomes an *Error: twilio-go would
// otherwise hide the status of an answer that is not Twilio's JSON behind
// a decoding error.
type transport struct {
	base   http.RoundTripper
	apiURL *url.URL
	// sleep waits d or until ctx ends (replaced in tests).
	sleep func(ctx context.Context, d time.Duration) error
	// ctx is the operation's context (see with).
	ctx context.Context
}

func newTransport(opts Options) (*transport, error) {
	t := &transport{base: http.DefaultTransport.(*http.Transport).Clone(), sleep: sleepCtx, ctx: context.Background()}
	if opts.APIURL != "" {
		u, err := url.Parse(opts.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("API URL %q: want an origin such as http://127.0.0.1:8081 (scheme, host and port only)", clean(opts.APIURL, 100))
		}
		t.apiURL = u
	}
	return t, nil
}

// with returns a copy of t whose requests run under ctx: twilio-go sends
// every request with context.Background().
func (t *transport) with(ctx context.Context) *transport {
	c := *t
	c.ctx = ctx
	return &c
}

// RoundTrip sends req, retrying as described on [transport].
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	for attempt := 1; ; attempt++ {
		// Each attempt, its body included, gets its own deadline under the
		// operation's context; twilio-go closes the body when done.
		actx, cancel := context.WithTimeout(t.ctx, RequestTimeout)
		r := req.Clone(actx)
		if t.apiURL != nil {
			r.URL.Scheme, r.URL.Host = t.apiURL.Scheme, t.apiURL.Host
			r.Host = host
		}
		if attempt > 1 && req.Body != nil {
			body, err := req.GetBody()
			if err != nil {
				cancel()
				return nil, err
			}
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			cancel()
			return nil, err
		}
		if resp.StatusCode < 400 {
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		apiErr := readError(resp, req.Method, host, req.URL.Path, attempt)
		cancel()
		retry := resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode >= 500 && (req.Method == http.MethodGet || req.Method == http.MethodDelete)
		if !retry || attempt >= MaxAttempts || (req.Body != nil && req.GetBody == nil) {
			return nil, apiErr
		}
		wait := apiErr.RetryAfter
		if wait == 0 {
			wait = time.Duration(250<<attempt) * time.Millisecond // 0.5s, 1s, 2s, …
		}
		if wait > MaxRetryAfter {
			return nil, apiErr
		}
		if err := t.sleep(t.ctx, wait); err != nil {
			return nil, err
		}
	}
}

// readError reads Twilio's error answer and closes its body.
func readError(resp *http.Response, method, host, path string, attempt int) *Error {
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode, Method: method, Host: host, Path: clean(path, 256), Attempts: attempt}
	var body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil {
		e.Code, e.Message = body.Code, clean(body.Message, 256)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if at, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(at), time.Second)
		}
	}
	return e
}

// cancelOnClose ends an attempt's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clean makes a string from Twilio or a user safe for an error, a log line
// or a table: control characters escaped, at most n bytes.
func clean(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
		if b.Len() > n {
			return truncate(b.String(), n)
		}
	}
	return b.String()
}

// truncate cuts s to at most n bytes at a character boundary, marking the
// cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && cut < len(s) && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
