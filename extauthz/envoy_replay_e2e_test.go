package extauthz_test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/gatewaytest"
	"github.com/twilioguard/twilioguard/signature"
)

// TestEnvoyDuplicates sends webhooks twice through a real Envoy to a route
// that lets duplicates through with x-twilioguard-duplicate: true and to a
// route that rejects them with 409, with and without an idempotency token.
func TestEnvoyDuplicates(t *testing.T) {
	t.Parallel()
	r := startRig(t)
	client := &http.Client{Timeout: 30 * time.Second}

	// Each step sends one request and says what must come of it: the
	// status, and whether the upstream got it flagged as a duplicate
	// (absent when the upstream must not be called).
	type step struct {
		name      string
		body      string // a form body of account A; the request is signed unless bad
		bad       bool   // sign with the wrong token
		token     string
		forgedDup bool // the client sends its own x-twilioguard-duplicate: true
		wantCode  int
		wantDup   string // "" (no header) or "true", when the upstream is called
	}
	scenario := func(route, kind string) []step {
		reject := route == "dup-reject"
		dupCode, dupUp := 200, "true"
		if reject {
			dupCode = 409
		}
		tok := func(s string) string {
			if kind == "without token" {
				return ""
			}
			return s
		}
		steps := []step{
			{name: "an invalid copy first records nothing", body: "one", bad: true, token: tok("t1"), wantCode: 403},
			{name: "first copy", body: "one", token: tok("t1"), forgedDup: true, wantCode: 200},
			{name: "second copy", body: "one", token: tok("t1"), wantCode: dupCode, wantDup: dupUp},
			{name: "third copy", body: "one", token: tok("t1"), forgedDup: true, wantCode: dupCode, wantDup: dupUp},
			{name: "another webhook", body: "two", token: tok("t2"), wantCode: 200},
		}
		if kind == "with token" {
			// Keyed by account and token: a retry Twilio signed anew is
			// still the same webhook.
			steps = append(steps, step{name: "another body, same token", body: "three", token: "t1", wantCode: dupCode, wantDup: dupUp})
		}
		return steps
	}

	wantDups := map[string]int{} // twilioguard's duplicate count by route
	for _, transport := range transportNames {
		e := r.envoys[transport]
		for _, route := range []string{"dup-flag", "dup-reject"} {
			for _, kind := range []string{"with token", "without token"} {
				t.Run(transport+"/"+route+"/"+kind, func(t *testing.T) {
					path := "/" + route + "/sms"
					unique := transport + " " + route + " " + kind
					for i, st := range scenario(route, kind) {
						body, params := form("AccountSid", sidA, "Body", st.body+" "+unique)
						token := tokenA
						if st.bad {
							token = tokenB
						}
						req := request{path: path, contentType: formType, body: body,
							signature: signature.Sign(token, publicBase+path, params), header: http.Header{}}
						if st.token != "" {
							req.header.Set("I-Twilio-Idempotency-Token", st.token+" "+unique)
						}
						if st.forgedDup {
							req.header.Set("X-Twilioguard-Duplicate", "true")
						}
						if st.wantDup != "" {
							wantDups[route]++
						}
						before := e.stats(t)
						id := fmt.Sprintf("dup-%s-%s-%s-%d", transport, route, strings.ReplaceAll(kind, " ", "-"), i)
						code, got := req.send(t, client, e.URL, id)
						if code != st.wantCode {
							t.Fatalf("%s: status %d %q; want %d", st.name, code, got, st.wantCode)
						}
						ups := r.app.take()
						if code != 200 {
							if len(ups) != 0 {
								t.Errorf("%s: upstream called on a %d", st.name, code)
							}
							if code == 409 {
								if got != "Conflict\n" {
									t.Errorf("%s: body %q; want Conflict", st.name, got)
								}
								if d := e.stats(t)["denied"] - before["denied"]; d != 1 {
									t.Errorf("%s: envoy ext_authz.denied went up by %d; want 1", st.name, d)
								}
								if line := e.accessLog(t, id); !strings.Contains(line, " 409 flags=UAEX") || !strings.Contains(line, "result=duplicate") {
									t.Errorf("%s: access log %q lacks the 409 and result=duplicate", st.name, line)
								}
							}
							continue
						}
						if len(ups) != 1 {
							t.Fatalf("%s: upstream calls = %d; want 1", st.name, len(ups))
						}
						var want []string
						if st.wantDup != "" {
							want = []string{st.wantDup}
						}
						if got := ups[0].Header.Values("X-Twilioguard-Duplicate"); !slices.Equal(got, want) {
							t.Errorf("%s: upstream X-Twilioguard-Duplicate = %q; want %q", st.name, got, want)
						}
						if got := ups[0].Header.Get("X-Twilioguard-Verified"); got != "true" {
							t.Errorf("%s: upstream X-Twilioguard-Verified = %q; want true", st.name, got)
						}
					}
				})
			}
		}
	}

	// twilioguard counts every duplicate it reported, by route and account,
	// whether the route let it through or not.
	_, page := gatewaytest.Get(r.tg.URL + "/metrics")
	for route, want := range wantDups {
		re := regexp.MustCompile(`(?m)^twilioguard_replay_duplicates_total\{account="` + sidA + `",route="` + route + `"\} (\S+)$`)
		m := re.FindStringSubmatch(page)
		if m == nil {
			t.Errorf("/metrics has no duplicates of route %s", route)
			continue
		}
		if got, _ := strconv.ParseFloat(m[1], 64); int(got) != want {
			t.Errorf("twilioguard_replay_duplicates_total of route %s = %v; want %d", route, got, want)
		}
	}
}
