package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/server"
)

const (
	verifyPath = twilioguardv1connect.VerifierServiceVerifyWebhookProcedure
	protoType  = "application/proto"
)

// defaultLimits resets the harness's small limits to the server defaults.
func defaultLimits(c *server.Config) { c.MaxParams, c.MaxBodyBytes = 0, 0 }

// hostileCase is one raw HTTP request that must not get a 5xx.
type hostileCase struct {
	name        string
	path        string
	contentType string
	body        []byte
	header      []string // name, value pairs
	// unknownEncoding marks a Content-Encoding the server does not support.
	unknownEncoding bool
}

// jsonReq marshals a VerifyWebhookRequest-shaped value as JSON.
func jsonReq(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkNot5xx sends c and fails when the answer is a 5xx, or a verdict of
// valid for a VerifyWebhook call that is not meant to be valid.
func checkNot5xx(t *testing.T, h *harness, c hostileCase) {
	t.Helper()
	status, body := h.post(t, c.path, c.contentType, c.body, c.header...)
	if status == http.StatusNotImplemented && c.unknownEncoding {
		// The Connect protocol requires "unimplemented" for an unsupported
		// Content-Encoding, so clients can fall back to identity.
		return
	}
	if status >= 500 {
		t.Errorf("%s: status %d; want a 4xx or a verdict. Body: %.300s", c.name, status, body)
		return
	}
	if status != http.StatusOK || c.path != verifyPath {
		return
	}
	var resp twilioguardv1.VerifyWebhookResponse
	var err error
	if strings.HasPrefix(c.contentType, protoType) {
		err = proto.Unmarshal(body, &resp)
	} else {
		err = protojson.Unmarshal(body, &resp)
	}
	if err != nil {
		t.Errorf("%s: status 200 with an undecodable body: %v", c.name, err)
	} else if resp.Valid {
		t.Errorf("%s: hostile request judged valid: %v", c.name, &resp)
	}
}

func TestHostileInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: defaultLimits})
	auth := []string{"Authorization", "Bearer " + adminToken}
	put := twilioguardv1connect.AccountServicePutAccountProcedure
	rotate := twilioguardv1connect.AccountServiceRotateAuthTokenProcedure
	list := twilioguardv1connect.AccountServiceListAccountsProcedure
	sms := smsParams(sid1)
	sig := signedParams(token1, hookURL, sms).Signature

	// Large inputs are built by hand: encoding/json is slow under -race.
	var many strings.Builder
	many.WriteString(`{"url":"` + hookURL + `","signature":"` + sig + `","account":"` + sid1 + `","params":[`)
	for i := range 100_000 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"key":"Key%d","value":"value"}`, i)
	}
	many.WriteString(`]}`)
	justOver := strings.Repeat(`{"key":"k","value":"v"},`, 1001)
	justOver = `{"url":"` + hookURL + `","signature":"` + sig + `","account":"` + sid1 + `","params":[` + justOver[:len(justOver)-1] + `]}`
	rawBody := func(n int, contentType string, body []byte) []byte {
		if body == nil {
			body = bytes.Repeat([]byte("A"), n)
		}
		return []byte(`{"url":"` + hookURL + `","signature":"` + sig + `","account":"` + sid1 +
			`","contentType":"` + contentType + `","body":"` + base64.StdEncoding.EncodeToString(body) + `"}`)
	}
	nested := `{"url":"` + hookURL + `","unknownField":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`
	nestedKnown := `{"url":"` + hookURL + `","params":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
	_, _ = zw.Write([]byte(`{"url":"` + hookURL + `","route":"`))
	_, _ = zw.Write(make([]byte, 8<<20)) // four times the read limit
	_ = zw.Close()

	cases := []hostileCase{
		{name: "invalid json", body: []byte(`{"url":`)},
		{name: "not json", body: []byte(`hello there`)},
		{name: "trailing garbage", body: []byte(`{"url":"https://x/"}}`)},
		{name: "json null", body: []byte(`null`)},
		{name: "json array", body: []byte(`[]`)},
		{name: "json string", body: []byte(`"x"`)},
		{name: "wrong type url", body: []byte(`{"url":5}`)},
		{name: "wrong type params", body: []byte(`{"url":"https://x/","params":"AccountSid=AC"}`)},
		{name: "wrong type param key", body: []byte(`{"url":"https://x/","params":[{"key":1,"value":true}]}`)},
		{name: "wrong type allowedAccounts", body: []byte(`{"url":"https://x/","allowedAccounts":"main"}`)},
		{name: "body not base64", body: []byte(`{"url":"https://x/","body":"!!!","contentType":"text/plain"}`)},
		{name: "null fields", body: []byte(`{"url":null,"params":null,"body":null,"signature":null}`)},
		{name: "unknown fields", body: jsonReq(t, map[string]any{"url": hookURL, "signature": sig, "account": sid1, "valid": true, "x": map[string]any{"y": []int{1, 2}}})},
		{name: "response fields", body: []byte(`{"url":"` + hookURL + `","valid":true,"credential":"auth_token","reason":"REASON_UNSPECIFIED"}`)},
		{name: "empty json body"},
		{name: "empty proto body", contentType: protoType},
		{name: "100k params", body: []byte(many.String())},
		{name: "params just over the limit", body: []byte(justOver)},
		{name: "multi-MiB base64 body", body: rawBody(3<<20, jsonType, nil)},
		{name: "body just over the limit", body: rawBody(1<<20+1, jsonType, nil)},
		{name: "262k form fields", body: rawBody(0, formType, bytes.Repeat([]byte("k=v&"), 1<<18))},
		{name: "huge signature", body: jsonReq(t, map[string]any{"url": hookURL, "params": sms, "signature": strings.Repeat("A", 1<<20)})},
		{name: "huge signature settings", body: jsonReq(t, map[string]any{"url": hookURL, "params": sms, "signature": sig, "signatureSettings": strings.Repeat("key=a,", 100_000)})},
		{name: "huge account", body: jsonReq(t, map[string]any{"url": hookURL, "params": sms, "signature": sig, "account": strings.Repeat("A", 1<<20)})},
		{name: "many allowed accounts", body: jsonReq(t, map[string]any{"url": hookURL, "params": sms, "signature": sig, "allowedAccounts": strings.Split(strings.Repeat("x,", 20_000), ",")})},
		{name: "huge url", body: jsonReq(t, map[string]any{"url": hookURL + "?" + strings.Repeat("a", 1<<20), "signature": sig})},
		{name: "non-UTF-8 url", body: []byte("{\"url\":\"https://x/\xff\xfe\",\"signature\":\"" + sig + "\"}")},
		{name: "non-UTF-8 param", body: []byte("{\"url\":\"" + hookURL + "\",\"params\":[{\"key\":\"Body\",\"value\":\"\xc3\x28\"}],\"signature\":\"" + sig + "\"}")},
		{name: "lone surrogate", body: []byte(`{"url":"` + hookURL + `","params":[{"key":"Body","value":"\ud800"}],"signature":"` + sig + `","account":"` + sid1 + `"}`)},
		{name: "NUL in account", body: []byte(`{"url":"` + hookURL + `","params":[],"signature":"` + sig + `","account":"AC\u0000"}`)},
		{name: "deeply nested unknown field", body: []byte(nested)},
		{name: "deeply nested params", body: []byte(nestedKnown)},
		{name: "gzip bomb", body: bomb.Bytes(), header: []string{"Content-Encoding", "gzip"}},
		{name: "not gzip", body: []byte(`{"url":"x"}`), header: []string{"Content-Encoding", "gzip"}},
		{name: "unknown encoding", body: []byte(`{"url":"x"}`), header: []string{"Content-Encoding", "br"}, unknownEncoding: true},
		{name: "text/plain", contentType: "text/plain", body: []byte(`{"url":"x"}`)},
		{name: "no content type", contentType: "-", body: []byte(`{"url":"x"}`)},
		{name: "proto garbage", contentType: protoType, body: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{name: "proto truncated length", contentType: protoType, body: protowire.AppendTag(nil, 1, protowire.BytesType)},
		{name: "proto length past end", contentType: protoType, body: append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), 1<<30), 'h')},
		{name: "proto non-UTF-8 string", contentType: protoType, body: protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("https://x/\xff"))},
		{name: "proto group tag", contentType: protoType, body: protowire.AppendTag(nil, 2, protowire.StartGroupType)},
		{name: "proto wrong wire type", contentType: protoType, body: protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7)},
		{name: "proto field zero", contentType: protoType, body: []byte{0x00, 0x00}},
		{name: "proto huge params count", contentType: protoType, body: bytes.Repeat(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), nil), 100_000)},
	}

	// Form bodies with percent garbage, and bodies that lie about their type.
	for i, body := range []string{"%", "%%%", "a=%G0", "%ZZ=1", "a=%", "a=%4", "&&&=&=", "=", "a=%e2%82", "%00=%00", "a=1;b=2", strings.Repeat("%", 1<<16)} {
		cases = append(cases, hostileCase{
			name: fmt.Sprintf("percent garbage %d", i),
			body: jsonReq(t, map[string]any{"url": hookURL, "body": []byte(body), "contentType": formType, "signature": sig, "account": sid1}),
		})
	}
	cases = append(cases,
		hostileCase{name: "json body sent as form", body: jsonReq(t, map[string]any{"url": hashedURL(jsonHook), "body": jsonHook, "contentType": formType, "signature": signedParams(token1, hashedURL(jsonHook), nil).Signature, "account": sid1})},
		hostileCase{name: "form body sent as json", body: jsonReq(t, map[string]any{"url": hookURL, "body": []byte("AccountSid=" + sid1 + "&Body=hi"), "contentType": jsonType, "signature": sig})},
		hostileCase{name: "form content type with params", body: jsonReq(t, map[string]any{"url": hookURL, "params": sms, "contentType": formType, "signature": sig})},
		hostileCase{name: "multipart content type", body: jsonReq(t, map[string]any{"url": hookURL, "body": []byte("--x\r\n"), "contentType": "multipart/form-data; boundary=x", "signature": sig, "account": sid1})},
	)

	// The admin API.
	cases = append(cases,
		hostileCase{name: "admin garbage without auth", path: put, body: []byte(`{"account":`)},
		hostileCase{name: "admin valid json without auth", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"x"}}`)},
		hostileCase{name: "admin garbage", path: put, body: []byte(`{"account":`), header: auth},
		hostileCase{name: "admin wrong types", path: put, body: []byte(`{"account":{"sid":5,"aliases":"a","version":"x"}}`), header: auth},
		hostileCase{name: "admin null account", path: put, body: []byte(`{"account":null}`), header: auth},
		hostileCase{name: "admin control char in token", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"a\u0000b"}}`), header: auth},
		hostileCase{name: "admin huge token", path: put, body: jsonReq(t, map[string]any{"account": map[string]any{"sid": sid3, "authToken": strings.Repeat("a", 1<<20)}}), header: auth},
		hostileCase{name: "admin many aliases", path: put, body: jsonReq(t, map[string]any{"account": map[string]any{"sid": sid3, "authToken": token3, "aliases": strings.Split(strings.Repeat("a,", 10_000), ",")}}), header: auth},
		hostileCase{name: "admin bad algorithm", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","sharedKeys":[{"id":"k","secret":"s","algorithms":[99]}]}}`), header: auth},
		hostileCase{name: "admin unknown algorithm name", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","sharedKeys":[{"id":"k","secret":"s","algorithms":["MD5"]}]}}`), header: auth},
		hostileCase{name: "admin far-future expiry", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","previousAuthToken":"p","previousExpireTime":"9999-12-31T23:59:59Z"}}`), header: auth},
		hostileCase{name: "admin out-of-range expiry", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","previousAuthToken":"p","previousExpireTime":"10000-01-01T00:00:00Z"}}`), header: auth},
		hostileCase{name: "admin proto out-of-range expiry", path: put, contentType: protoType, header: auth, body: mustMarshal(t, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
			Sid: sid3, AuthToken: token3, PreviousAuthToken: "p", PreviousExpireTime: &timestamppb.Timestamp{Seconds: math.MaxInt64, Nanos: -1},
		}})},
		hostileCase{name: "admin negative version", path: put, body: []byte(`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","version":"-5"}}`), header: auth},
		hostileCase{name: "admin huge grace", path: rotate, body: []byte(`{"account":"` + sid2 + `","newAuthToken":"` + token3New + `","grace":"315576000000s"}`), header: auth},
		hostileCase{name: "admin out-of-range grace", path: rotate, body: []byte(`{"account":"` + sid2 + `","newAuthToken":"` + token3New + `","grace":"315576000001s"}`), header: auth},
		hostileCase{name: "admin proto invalid grace", path: rotate, contentType: protoType, header: auth, body: rotateWithRawGrace(sid2, token3New, 1, -5)},
		hostileCase{name: "admin huge page size", path: list, body: []byte(`{"pageSize":2147483647}`), header: auth},
		hostileCase{name: "admin page size overflow", path: list, body: []byte(`{"pageSize":4294967296}`), header: auth},
		hostileCase{name: "admin forged page token", path: list, body: []byte(`{"pageToken":"` + base64.RawURLEncoding.EncodeToString([]byte("AC' OR 1=1 --")) + `"}`), header: auth},
		hostileCase{name: "admin proto garbage", path: list, contentType: protoType, body: []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, header: auth},
	)

	for _, c := range cases {
		if c.path == "" {
			c.path = verifyPath
		}
		switch c.contentType {
		case "":
			c.contentType = jsonType
		case "-":
			c.contentType = ""
		}
		checkNot5xx(t, h, c)
	}

	// Connect GETs (VerifyWebhook has no side effects) with garbage.
	for _, q := range []string{"?encoding=json&message=%7B", "?encoding=json&message=%ff%fe", "?encoding=xml&message=x", "?message=" + strings.Repeat("A", 8<<10)} {
		if code, body := h.get(t, verifyPath+q); code >= 500 {
			t.Errorf("GET %s: status %d: %.200s", q, code, body)
		}
	}

	assertStillVerifies(t, h)
}

// TestConnectGetBadBase64 sends a Connect GET whose base64 message does not
// decode: it is malformed input and must get a 4xx.
func TestConnectGetBadBase64(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	for _, q := range []string{"?encoding=proto&base64=1&message=!!", "?encoding=json&base64=1&message=e30%3D%3D%3D"} {
		if code, body := h.get(t, verifyPath+q); code >= 500 {
			t.Errorf("GET %s%s: status %d (%s); want a 4xx (invalid_argument)", verifyPath, q, code, body)
		}
	}
	assertStillVerifies(t, h)
}

// mustMarshal encodes m in the protobuf binary format.
func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rotateWithRawGrace encodes a RotateAuthTokenRequest whose grace Duration
// has the given seconds and nanos, bypassing any validation.
func rotateWithRawGrace(account, token string, seconds, nanos int64) []byte {
	var grace []byte
	grace = protowire.AppendVarint(protowire.AppendTag(grace, 1, protowire.VarintType), uint64(seconds))
	grace = protowire.AppendVarint(protowire.AppendTag(grace, 2, protowire.VarintType), uint64(nanos))
	var b []byte
	b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), account)
	b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), token)
	return protowire.AppendBytes(protowire.AppendTag(b, 3, protowire.BytesType), grace)
}

// assertStillVerifies checks that a correctly signed request still
// verifies, through every protocol.
func assertStillVerifies(t *testing.T, h *harness) {
	t.Helper()
	req := signedParams(token1, hookURL, smsParams(sid1))
	for _, p := range protocols {
		got, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid {
			t.Errorf("%s: signed request after the hostile input = %v, %v; want valid", p.name, got, err)
		}
	}
}

// mutate applies one to three random byte flips, truncations or insertions
// to a copy of b.
func mutate(r *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	tokens := [][]byte{{'"'}, {'{'}, {'}'}, {'['}, {']'}, {','}, {':'}, {'\\'}, {0}, {0xff}, []byte(`\u0000`), []byte(`\ud800`), []byte(`null`), []byte(`%`), []byte(`"a":`), []byte(`9999999999999999999999`)}
	for range 1 + r.IntN(3) {
		if len(out) == 0 {
			out = append(out, byte(r.IntN(256)))
			continue
		}
		i := r.IntN(len(out))
		switch r.IntN(4) {
		case 0: // flip bits of one byte
			out[i] ^= byte(1 + r.IntN(255))
		case 1: // truncate
			out = out[:i]
		case 2: // insert random bytes
			ins := make([]byte, 1+r.IntN(8))
			for j := range ins {
				ins[j] = byte(r.IntN(256))
			}
			out = append(out[:i], append(ins, out[i:]...)...)
		case 3: // insert a JSON-significant token
			out = append(out[:i], append(append([]byte(nil), tokens[r.IntN(len(tokens))]...), out[i:]...)...)
		}
	}
	return out
}

func TestMutatedRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: defaultLimits})
	req := signedParams(token1, hookURL, smsParams(sid1))
	req.AllowedAccounts = []string{"main"}
	req.Route = "sms"
	formReq := signedParams(token1, hookURL, nil)
	formReq.Params = nil
	formReq.Body = []byte("AccountSid=" + sid1 + "&Body=Hello+there%21&Rep=1&Rep=2")
	formReq.ContentType = formType
	formReq.Signature = signedParams(token1, hookURL, params("AccountSid", sid1, "Body", "Hello there!", "Rep", "1", "Rep", "2")).Signature

	seeds := []struct {
		contentType string
		body        []byte
		n           int
	}{
		{jsonType, []byte(protojson.Format(req)), 1000},
		{jsonType, []byte(protojson.Format(formReq)), 1000},
		{protoType, mustMarshal(t, req), 400},
	}
	// The seeds themselves are valid.
	for _, s := range seeds {
		c := hostileCase{name: "seed", path: verifyPath, contentType: s.contentType, body: s.body}
		status, body := h.post(t, c.path, c.contentType, c.body)
		if status != http.StatusOK || !bytes.Contains(body, []byte("true")) && s.contentType == jsonType {
			t.Fatalf("seed %s: status %d %s; want a valid verdict", s.contentType, status, body)
		}
	}

	r := rand.New(rand.NewPCG(3, 2026))
	type job struct {
		contentType string
		body        []byte
	}
	var jobs []job
	for _, s := range seeds {
		for range s.n {
			jobs = append(jobs, job{s.contentType, mutate(r, s.body)})
		}
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	work := make(chan job)
	for range 4 {
		wg.Go(func() {
			for j := range work {
				status, body, err := h.send(t.Context(), verifyPath, j.contentType, j.body)
				if err != nil {
					t.Errorf("mutated %s request %q: %v", j.contentType, j.body, err)
					continue
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
				if status >= 500 {
					t.Errorf("mutated %s request: status %d (%.200s)\nrequest: %q", j.contentType, status, body, j.body)
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	t.Logf("statuses of %d mutated requests: %v", len(jobs), statuses)
	if statuses[http.StatusOK] == 0 || statuses[http.StatusBadRequest] == 0 {
		t.Errorf("statuses %v: want both verdicts (200) and refusals (400)", statuses)
	}
	assertStillVerifies(t, h)
}
