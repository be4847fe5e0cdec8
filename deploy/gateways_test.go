// Package deploy_test checks the gateway examples that cannot run here
// (Istio, Envoy Gateway, Traefik's own process): that they parse, that they
// send the body the way twilioguard needs it, fail closed, and name the
// headers, paths and ports twilioguard uses. The examples that can run
// (nginx, Caddy, Envoy, the Traefik forwardAuth request shape) run in the
// end-to-end tests of packages proxy and forwardauth.
package deploy_test

import (
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/twilioguard/twilioguard/forwardauth"
	"github.com/twilioguard/twilioguard/webhookreq"
)

func read(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// servicePort is the port of deploy/kubernetes/service.yaml.
func servicePort(t *testing.T) int {
	t.Helper()
	var svc struct {
		Spec struct {
			Ports []struct {
				Port int `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	read(t, "kubernetes/service.yaml", &svc)
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("kubernetes/service.yaml: %d ports; want 1", len(svc.Spec.Ports))
	}
	return svc.Spec.Ports[0].Port
}

type bodyCheck struct {
	MaxRequestBytes     int   `yaml:"maxRequestBytes"`
	AllowPartialMessage *bool `yaml:"allowPartialMessage"`
	PackAsBytes         bool  `yaml:"packAsBytes"`
}

func TestIstio(t *testing.T) {
	t.Parallel()
	var mesh struct {
		ExtensionProviders []struct {
			Name string `yaml:"name"`
			GRPC *struct {
				Service                   string     `yaml:"service"`
				Port                      int        `yaml:"port"`
				FailOpen                  *bool      `yaml:"failOpen"`
				StatusOnError             string     `yaml:"statusOnError"`
				IncludeRequestBodyInCheck *bodyCheck `yaml:"includeRequestBodyInCheck"`
			} `yaml:"envoyExtAuthzGrpc"`
			HTTP *struct {
				Service                         string            `yaml:"service"`
				Port                            int               `yaml:"port"`
				PathPrefix                      string            `yaml:"pathPrefix"`
				FailOpen                        *bool             `yaml:"failOpen"`
				StatusOnError                   string            `yaml:"statusOnError"`
				IncludeRequestHeadersInCheck    []string          `yaml:"includeRequestHeadersInCheck"`
				IncludeAdditionalHeadersInCheck map[string]string `yaml:"includeAdditionalHeadersInCheck"`
				IncludeRequestBodyInCheck       *bodyCheck        `yaml:"includeRequestBodyInCheck"`
				HeadersToUpstreamOnAllow        []string          `yaml:"headersToUpstreamOnAllow"`
				HeadersToDownstreamOnDeny       []string          `yaml:"headersToDownstreamOnDeny"`
			} `yaml:"envoyExtAuthzHttp"`
		} `yaml:"extensionProviders"`
	}
	read(t, "istio/meshconfig.yaml", &mesh)
	port := servicePort(t)
	providers := map[string]bool{}
	for _, p := range mesh.ExtensionProviders {
		providers[p.Name] = true
		switch {
		case p.GRPC != nil:
			g := p.GRPC
			if g.Port != port || g.FailOpen == nil || *g.FailOpen || g.StatusOnError != "503" {
				t.Errorf("%s: port %d failOpen %v statusOnError %q; want %d, false, 503", p.Name, g.Port, g.FailOpen, g.StatusOnError, port)
			}
			if b := g.IncludeRequestBodyInCheck; b == nil || !b.PackAsBytes || b.AllowPartialMessage == nil || *b.AllowPartialMessage || b.MaxRequestBytes < 16<<10 {
				t.Errorf("%s: includeRequestBodyInCheck %+v; want packAsBytes, no partial message, at least 16 KiB", p.Name, b)
			}
		case p.HTTP != nil:
			h := p.HTTP
			if h.Port != port || h.PathPrefix != forwardauth.Path || h.FailOpen == nil || *h.FailOpen || h.StatusOnError != "503" {
				t.Errorf("%s: port %d pathPrefix %q failOpen %v; want %d, %s, false", p.Name, h.Port, h.PathPrefix, h.FailOpen, port, forwardauth.Path)
			}
			if b := h.IncludeRequestBodyInCheck; b == nil || b.AllowPartialMessage == nil || *b.AllowPartialMessage || b.MaxRequestBytes < 16<<10 {
				t.Errorf("%s: includeRequestBodyInCheck %+v; want the body, no partial message", p.Name, b)
			}
			for _, want := range []string{"content-type", strings.ToLower(webhookreq.HeaderSignature), strings.ToLower(webhookreq.HeaderSignatureSettings)} {
				if !slices.Contains(h.IncludeRequestHeadersInCheck, want) {
					t.Errorf("%s: includeRequestHeadersInCheck lacks %s", p.Name, want)
				}
			}
			for name := range h.IncludeAdditionalHeadersInCheck {
				if !slices.Contains([]string{forwardauth.HeaderPublicBaseURL, forwardauth.HeaderAccounts, forwardauth.HeaderMode,
					forwardauth.HeaderRoute, forwardauth.HeaderDuplicates}, http.CanonicalHeaderKey(name)) {
					t.Errorf("%s: includeAdditionalHeadersInCheck %s is not a twilioguard setting", p.Name, name)
				}
			}
			for _, want := range []string{webhookreq.HeaderVerified, webhookreq.HeaderAccountSID} {
				if !slices.Contains(h.HeadersToUpstreamOnAllow, strings.ToLower(want)) {
					t.Errorf("%s: headersToUpstreamOnAllow lacks %s", p.Name, want)
				}
			}
			if !slices.Contains(h.HeadersToDownstreamOnDeny, strings.ToLower(webhookreq.HeaderReason)) {
				t.Errorf("%s: headersToDownstreamOnDeny lacks %s", p.Name, webhookreq.HeaderReason)
			}
		default:
			t.Errorf("provider %s is neither envoyExtAuthzGrpc nor envoyExtAuthzHttp", p.Name)
		}
	}
	if len(providers) != 2 {
		t.Errorf("providers %v; want the gRPC and the HTTP one", providers)
	}

	var policy struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			Action   string `yaml:"action"`
			Provider struct {
				Name string `yaml:"name"`
			} `yaml:"provider"`
			Rules []any `yaml:"rules"`
		} `yaml:"spec"`
	}
	read(t, "istio/authorizationpolicy.yaml", &policy)
	if policy.Kind != "AuthorizationPolicy" || policy.Spec.Action != "CUSTOM" || !providers[policy.Spec.Provider.Name] || len(policy.Spec.Rules) == 0 {
		t.Errorf("authorization policy %+v; want a CUSTOM AuthorizationPolicy with rules naming a provider of meshconfig.yaml", policy)
	}
}

func TestEnvoyGateway(t *testing.T) {
	t.Parallel()
	var policy struct {
		Kind string `yaml:"kind"`
		Spec struct {
			TargetRefs []struct {
				Kind string `yaml:"kind"`
			} `yaml:"targetRefs"`
			ExtAuth struct {
				FailOpen      *bool `yaml:"failOpen"`
				BodyToExtAuth *struct {
					MaxRequestBytes int `yaml:"maxRequestBytes"`
				} `yaml:"bodyToExtAuth"`
				GRPC *struct {
					BackendRefs []struct {
						Name string `yaml:"name"`
						Port int    `yaml:"port"`
					} `yaml:"backendRefs"`
				} `yaml:"grpc"`
				HeadersToExtAuth []string `yaml:"headersToExtAuth"`
			} `yaml:"extAuth"`
		} `yaml:"spec"`
	}
	read(t, "envoy-gateway/securitypolicy.yaml", &policy)
	ea := policy.Spec.ExtAuth
	switch {
	case policy.Kind != "SecurityPolicy" || len(policy.Spec.TargetRefs) != 1 || policy.Spec.TargetRefs[0].Kind != "HTTPRoute":
		t.Errorf("want a SecurityPolicy on an HTTPRoute, got %+v", policy)
	case ea.FailOpen == nil || *ea.FailOpen:
		t.Error("extAuth.failOpen: want false")
	case ea.BodyToExtAuth == nil || ea.BodyToExtAuth.MaxRequestBytes < 16<<10:
		t.Error("extAuth.bodyToExtAuth: want the body (at least 16 KiB)")
	case ea.GRPC == nil || len(ea.GRPC.BackendRefs) != 1 || ea.GRPC.BackendRefs[0].Port != servicePort(t):
		t.Errorf("extAuth.grpc: want one backendRef on port %d", servicePort(t))
	case len(ea.HeadersToExtAuth) > 0:
		t.Error("extAuth.headersToExtAuth: leave unset, so every header (the signature's included) reaches twilioguard")
	}
}

func TestTraefik(t *testing.T) {
	t.Parallel()
	var cfg struct {
		HTTP struct {
			Routers map[string]struct {
				Middlewares []string `yaml:"middlewares"`
			} `yaml:"routers"`
			Middlewares map[string]struct {
				ForwardAuth *struct {
					Address                  string   `yaml:"address"`
					ForwardBody              bool     `yaml:"forwardBody"`
					AuthRequestHeaders       []string `yaml:"authRequestHeaders"`
					AuthResponseHeadersRegex string   `yaml:"authResponseHeadersRegex"`
					TrustForwardHeader       bool     `yaml:"trustForwardHeader"`
				} `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	read(t, "traefik/dynamic.yml", &cfg)
	fa := cfg.HTTP.Middlewares["twilioguard"].ForwardAuth
	if fa == nil || !slices.Contains(cfg.HTTP.Routers["twilio"].Middlewares, "twilioguard") {
		t.Fatal("want a twilioguard forwardAuth middleware on the twilio router")
	}
	u, err := url.Parse(fa.Address)
	if err != nil || u.Path != forwardauth.Path || !fa.ForwardBody || fa.TrustForwardHeader {
		t.Errorf("address %q forwardBody %v trustForwardHeader %v; want …%s, true, false", fa.Address, fa.ForwardBody, fa.TrustForwardHeader, forwardauth.Path)
	}
	for k := range u.Query() {
		if !slices.Contains([]string{forwardauth.ParamAccounts, forwardauth.ParamPublicBaseURL, forwardauth.ParamMode,
			forwardauth.ParamRoute, forwardauth.ParamDuplicates}, k) {
			t.Errorf("address parameter %s is not a twilioguard setting", k)
		}
	}
	for _, h := range fa.AuthRequestHeaders {
		if webhookreq.IsInjected(h) {
			t.Errorf("authRequestHeaders passes %s, which a client could forge", h)
		}
	}
	for _, want := range []string{webhookreq.HeaderSignature, webhookreq.HeaderSignatureSettings, webhookreq.HeaderIdempotencyToken, "Content-Type"} {
		if !slices.Contains(fa.AuthRequestHeaders, want) {
			t.Errorf("authRequestHeaders lacks %s", want)
		}
	}
	re, err := regexp.Compile(fa.AuthResponseHeadersRegex)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"X-Twilioguard-Verified", "X_twilioguard_verified", "X-Twilio-Account-Sid", "X_Twilio_Account_Sid",
		"X-Twilioguard-Duplicate", "X-Twilioguard-Anything"} {
		if !re.MatchString(name) || !webhookreq.IsInjected(name) {
			t.Errorf("authResponseHeadersRegex does not match %s", name)
		}
	}
	for _, name := range []string{"X-Twilio-Signature", "X-Twilio-Webhooks-Signature-Settings", "I-Twilio-Idempotency-Token", "X-Twilio-Account-Sidx"} {
		if re.MatchString(name) {
			t.Errorf("authResponseHeadersRegex matches %s, which the application needs from the client", name)
		}
	}
}
