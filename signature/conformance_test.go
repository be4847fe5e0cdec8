package signature

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	twilio "github.com/twilio/twilio-go/client"
)

var update = flag.Bool("update", false, "rewrite testdata/DISAGREEMENTS.md from the vectors")

// vectorFile is produced by testdata/gen (see scripts/check.d/20-signature.sh):
// requests signed by the real twilio-node and twilio-python SDKs, each SDK's
// verdict, and the verdict DESIGN.md §2 expects.
const vectorFile = "testdata/vectors.json"

// vectors is the parsed vector file.
type vectors struct {
	Generator map[string]string `json:"generator"`
	Secrets   map[string]string `json:"secrets"`
	Cases     []vector          `json:"cases"`
}

// vector is one test request.
type vector struct {
	ID                string       `json:"id"`
	Category          string       `json:"category"`
	Description       string       `json:"description"`
	Method            string       `json:"method"`
	URL               string       `json:"url"`
	ContentType       string       `json:"content_type"`
	Params            [][2]string  `json:"params"` // nil when the body does not decode, or not a form
	Body              string       `json:"body"`
	Signature         *string      `json:"signature"`
	SignatureSettings *string      `json:"signature_settings"`
	Credentials       []credential `json:"credentials"`
	Signed            struct {
		URL       *string     `json:"url"`
		Params    [][2]string `json:"params"`
		String    *string     `json:"string"`
		SecretOf  string      `json:"secret_of"`
		Algorithm string      `json:"algorithm"`
	} `json:"signed"`
	Expect struct {
		Verdict    string  `json:"verdict"`
		Credential *string `json:"credential"`
		MatchedURL *string `json:"matched_url"`
	} `json:"expect"`
	Note   *string `json:"note"`
	Node   sdk     `json:"node"`
	Python sdk     `json:"python"`
}

// credential is a secret the verifier holds.
type credential struct {
	Name       string   `json:"name"`
	Secret     string   `json:"secret"`
	SharedKey  bool     `json:"shared_key"`
	Algorithms []string `json:"algorithms"`
}

// sdk is what one SDK computed: its signature over the signed input and its
// verdict on the request ("valid", "invalid" or "error").
type sdk struct {
	Signature *string `json:"signature"`
	Verdict   string  `json:"verdict"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", vectorFile, err)
	}
	if len(v.Cases) < 200 {
		t.Fatalf("%s has %d cases, want a few hundred", vectorFile, len(v.Cases))
	}
	return v
}

func values(pairs [][2]string) url.Values {
	vals := url.Values{}
	for _, p := range pairs {
		vals[p[0]] = append(vals[p[0]], p[1])
	}
	return vals
}

// outcome is a verification result as the service reports it.
type outcome struct {
	verdict    string // "valid" or a reason
	credential string
	matchedURL string
}

// verify checks v the way the service does (DESIGN.md §2): a settings header
// selects a SharedKey, whose allowed algorithms must include the named one,
// and the auth tokens are tried after it. paramsMode passes the decoded
// params instead of the raw body.
func verify(v *vector, paramsMode bool) outcome {
	var creds []Credential
	if v.SignatureSettings != nil {
		s, err := ParseSettings(*v.SignatureSettings)
		switch {
		case errors.Is(err, ErrAlgorithmNotAllowed):
			return outcome{verdict: "algorithm_not_allowed"}
		case err != nil:
			return outcome{verdict: "malformed_request"}
		}
		var key *credential
		for i, c := range v.Credentials {
			if c.SharedKey && c.Name == s.KeyID {
				key = &v.Credentials[i]
			}
		}
		if key == nil {
			return outcome{verdict: "unknown_shared_key"}
		}
		var allowed []Algorithm
		for _, name := range key.Algorithms {
			a, err := ParseAlgorithm(name)
			if err != nil {
				panic(err)
			}
			allowed = append(allowed, a)
		}
		if CheckAlgorithm(s.Algorithm, allowed) != nil {
			return outcome{verdict: "algorithm_not_allowed"}
		}
		creds = append(creds, Credential{Name: key.Name, Secret: key.Secret, Algorithm: s.Algorithm})
	}
	for _, c := range v.Credentials {
		if !c.SharedKey {
			creds = append(creds, Credential{Name: c.Name, Secret: c.Secret, Algorithm: HMACSHA1})
		}
	}
	req := Request{URL: v.URL}
	if v.Signature != nil {
		req.Signature = *v.Signature
	}
	switch {
	case v.Method == "GET":
	case paramsMode:
		req.Params = values(v.Params)
	default:
		req.HasBody, req.Body, req.ContentType = true, []byte(v.Body), v.ContentType
	}
	m, err := Check(&req, creds)
	if err != nil {
		return outcome{verdict: reason(err)}
	}
	return outcome{verdict: "valid", credential: creds[m.Credential].Name, matchedURL: m.URL}
}

// reason names the error as the vectors do.
func reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrMissingSignature, "missing_signature"},
		{ErrMalformedSignature, "malformed_signature"},
		{ErrMismatch, "mismatch"},
		{ErrBodyHashMismatch, "body_hash_mismatch"},
		{ErrMissingBodyHash, "missing_body_hash"},
		{ErrAlgorithmNotAllowed, "algorithm_not_allowed"},
		{ErrNoCredentials, "no_credentials"},
		{ErrMalformedRequest, "malformed_request"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "unexpected error: " + err.Error()
}

// TestConformance checks every vector against the verdict DESIGN.md §2
// expects, in body mode and, for forms that decode, in params mode.
func TestConformance(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	for i := range vs.Cases {
		v := &vs.Cases[i]
		modes := []bool{false}
		if v.Method == "POST" && isForm(v.ContentType) && v.Params != nil {
			modes = append(modes, true)
		}
		for _, paramsMode := range modes {
			got := verify(v, paramsMode)
			want := outcome{verdict: v.Expect.Verdict}
			if v.Expect.Credential != nil {
				want.credential = *v.Expect.Credential
			}
			if v.Expect.MatchedURL != nil {
				want.matchedURL = *v.Expect.MatchedURL
			}
			if got != want {
				t.Errorf("%s (params mode %v): got %+v, want %+v", v.ID, paramsMode, got, want)
			}
		}
	}
}

// TestConformanceSignatures checks that Sign computes the signature
// twilio-python computes for every signed input, and twilio-node's except
// where twilio-node sorts in UTF-16 order.
func TestConformanceSignatures(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	for i := range vs.Cases {
		v := &vs.Cases[i]
		alg, err := ParseAlgorithm(v.Signed.Algorithm)
		if err != nil {
			t.Fatalf("%s: %v", v.ID, err)
		}
		secret, ok := vs.Secrets[v.Signed.SecretOf]
		if !ok {
			t.Fatalf("%s: unknown secret %q", v.ID, v.Signed.SecretOf)
		}
		var got string
		if v.Signed.String != nil {
			got = SignWith(alg, secret, *v.Signed.String, nil)
		} else {
			got = SignWith(alg, secret, *v.Signed.URL, values(v.Signed.Params))
		}
		if v.Python.Signature == nil || got != *v.Python.Signature {
			t.Errorf("%s: Sign = %q, twilio-python computes %v", v.ID, got, v.Python.Signature)
		}
		if n := v.Node.Signature; n != nil && *n != got && !strings.Contains(noteOf(v), "UTF-16") {
			t.Errorf("%s: Sign = %q, twilio-node computes %q", v.ID, got, *n)
		}
	}
}

// TestPublishedSignaturesInVectors makes sure the vectors' SDK signatures
// are not all empty or equal (a broken generator).
func TestPublishedSignaturesInVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	seen := map[string]bool{}
	for _, v := range vs.Cases {
		if v.Python.Signature != nil {
			seen[*v.Python.Signature] = true
		}
	}
	if len(seen) < len(vs.Cases)/2 {
		t.Errorf("only %d distinct signatures in %d cases", len(seen), len(vs.Cases))
	}
	if vs.Generator["twilio-node"] != "6.3.1" {
		t.Errorf("vectors generated with twilio-node %q, want the pinned 6.3.1", vs.Generator["twilio-node"])
	}
}

func noteOf(v *vector) string {
	if v.Note == nil {
		return ""
	}
	return *v.Note
}

// goVerdict is what an app using twilio-go v1.31.0 decides: ValidateBody for
// a POST, Validate with no params for a GET, with the SharedKey secret when
// the settings header is present and each auth token otherwise. twilio-go
// knows only HMAC-SHA1.
func goVerdict(v *vector) string {
	sig := ""
	if v.Signature != nil {
		sig = *v.Signature
	}
	for _, c := range v.Credentials {
		if c.SharedKey != (v.SignatureSettings != nil) {
			continue
		}
		rv := twilio.NewRequestValidator(c.Secret)
		var ok bool
		if v.Method == "GET" {
			ok = rv.Validate(v.URL, map[string]string{}, sig)
		} else {
			ok = rv.ValidateBody(v.URL, []byte(v.Body), sig)
		}
		if ok {
			return "valid"
		}
	}
	return "invalid"
}

// TestDisagreements rebuilds the table of every vector where an SDK's
// verdict differs from ours, with the reason, and compares it with the
// committed testdata/DISAGREEMENTS.md (go test -run TestDisagreements
// -update rewrites it).
func TestDisagreements(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	var rows []string
	counts := map[string]int{}
	for i := range vs.Cases {
		v := &vs.Cases[i]
		ours := verify(v, false).verdict
		valid := ours == "valid"
		verdicts := []string{v.Node.Verdict, v.Python.Verdict, goVerdict(v)}
		disagree := false
		for i, sdkVerdict := range verdicts {
			if (sdkVerdict == "valid") != valid {
				disagree = true
				counts[[]string{"node", "python", "go"}[i]]++
			}
		}
		if !disagree {
			continue
		}
		if noteOf(v) == "" {
			t.Errorf("%s: an SDK disagrees (node %s, python %s, go %s; ours %s) but the case has no note",
				v.ID, verdicts[0], verdicts[1], verdicts[2], ours)
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | %s | %s | %s | %s |",
			v.ID, cell(v.Description), ours, mark(verdicts[0], valid), mark(verdicts[1], valid), mark(verdicts[2], valid),
			cell(noteOf(v))))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Where the SDKs disagree with twilioguard

Generated by `+"`go test ./signature -run TestDisagreements -update`"+` from testdata/vectors.json
(%d requests signed by twilio-node %s and twilio-python %s; twilio-go %s run by the test).
Do not edit by hand.

"ours" is this package's verdict, which equals the verdict DESIGN.md §2 expects for every case
(TestConformance). An SDK column shows the SDK's verdict when it differs from ours (**accepts**,
**rejects**, **raises**), and "·" when it agrees. The node and python verdicts model an app using
the SDK's validator as documented (twilio-node's webhook() middleware logic with
querystring-parsed form bodies; twilio-python's validate() with a Flask-like MultiDict or the raw
JSON string); twilio-go's is RequestValidator.ValidateBody (POST) or Validate (GET).

Disagreements: twilio-node %d, twilio-python %d, twilio-go %d, in %d of %d cases.

| case | request | ours | node | python | go | why |
|---|---|---|---|---|---|---|
`, len(vs.Cases), vs.Generator["twilio-node"], vs.Generator["twilio-python"], "v1.31.0",
		counts["node"], counts["python"], counts["go"], len(rows), len(vs.Cases))
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	path := filepath.Join("testdata", "DISAGREEMENTS.md")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != b.String() {
		t.Errorf("%s is out of date: run go test ./signature -run TestDisagreements -update", path)
	}
}

// mark renders an SDK verdict that may disagree with ours.
func mark(sdkVerdict string, oursValid bool) string {
	if (sdkVerdict == "valid") == oursValid {
		return "·"
	}
	switch sdkVerdict {
	case "valid":
		return "**accepts**"
	case "error":
		return "**raises**"
	}
	return "**rejects**"
}

// cell escapes s for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
