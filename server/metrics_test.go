package server_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/server"
)

// counters parses a /metrics page and returns the values of the metric
// family name, keyed by its labels written as k=v pairs joined by commas in
// label-name order.
func counters(t *testing.T, page, name string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	fam, ok := families[name]
	if !ok {
		t.Fatalf("/metrics has no %s; families: %v", name, slices.Sorted(maps.Keys(families)))
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(labels)
		out[strings.Join(labels, ",")] = m.GetCounter().GetValue()
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: func(c *server.Config) { c.AccountLabel = true }})
	good := signedParams(token1, hookURL, smsParams(sid1))
	good.Route = "sms"
	previous := signedParams(prevToken1, hookURL, smsParams(sid1))
	previous.Route = "sms"
	bad := signedParams(token2, hookURL, smsParams(sid1))
	bad.Route = `evil"} 1` + "\n" + `injected{a="b`
	malformed := &twilioguardv1.VerifyWebhookRequest{Url: "ftp://x", Signature: "x"}
	for _, p := range protocols {
		for _, req := range []*twilioguardv1.VerifyWebhookRequest{good, previous, bad, malformed} {
			_, _ = h.verifier(p).VerifyWebhook(t.Context(), req)
		}
	}

	_, page := h.get(t, "/metrics")
	got := counters(t, page, "twilioguard_verifications_total")
	want := map[string]float64{
		"account=" + sid1 + ",credential=auth_token,reason=none,result=valid,route=sms":          3,
		"account=" + sid1 + ",credential=previous_auth_token,reason=none,result=valid,route=sms": 3,
		"account=" + sid1 + ",credential=,reason=SIGNATURE_MISMATCH,result=invalid,route=other":  3,
		"account=,credential=,reason=invalid_argument,result=error,route=default":                3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("twilioguard_verifications_total (-want +got):\n%s", diff)
	}
	if strings.Contains(page, "injected") {
		t.Errorf("a caller-chosen route name reached /metrics unfiltered")
	}
	for _, name := range []string{
		"twilioguard_verification_duration_seconds_count", "twilioguard_store_up 1",
		"twilioguard_cache_loaded 1", "twilioguard_cache_accounts 2", "twilioguard_cache_last_sync_timestamp_seconds",
	} {
		if !strings.Contains(page, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	assertNoSecrets(t, "/metrics", page)
}
