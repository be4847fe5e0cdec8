package signature

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAccountSids(t *testing.T) {
	t.Parallel()
	const (
		form = "application/x-www-form-urlencoded"
		hook = "https://example.com/sms"
	)
	formReq := func(body string) Request {
		return Request{URL: hook, Body: []byte(body), ContentType: form, HasBody: true}
	}
	jsonReq := func(body string) Request {
		return Request{URL: hook, Body: []byte(body), ContentType: "application/json", HasBody: true}
	}
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"nothing", Request{URL: hook}, nil},
		{"params", Request{URL: hook, Params: url.Values{"AccountSid": {"AC1"}}}, []string{"AC1"}},
		{"params repeated", Request{URL: hook, Params: url.Values{"AccountSid": {"AC1", "AC2", "AC1"}}}, []string{"AC1", "AC2"}},
		{"fields", Request{URL: hook, Fields: []Field{{"AccountSid", "AC1"}, {"accountsid", "AC3"}, {"AccountSid", "AC2"}, {"AccountSid", "AC1"}}},
			[]string{"AC1", "AC2"}},
		{"params keys are already decoded", Request{URL: hook, Params: url.Values{"Account%53id": {"AC2"}}}, nil},
		{"params key case", Request{URL: hook, Params: url.Values{"accountsid": {"AC2"}}}, nil},

		{"form", formReq("Body=hi&AccountSid=AC1"), []string{"AC1"}},
		{"form charset", Request{URL: hook, Body: []byte("AccountSid=AC1"), ContentType: form + "; charset=utf-8", HasBody: true}, []string{"AC1"}},
		{"form Account%53id", formReq("AccountSid=AC1&Account%53id=AC2"), []string{"AC1", "AC2"}},
		{"form %41ccountSid", formReq("%41ccountSid=AC2"), []string{"AC2"}},
		{"form lower-case escapes", formReq("%41ccount%53%69%64=AC2"), []string{"AC2"}},
		{"form every byte escaped", formReq("%41%63%63%6f%75%6e%74%53%69%64=AC2"), []string{"AC2"}},
		{"form double escape is another key", formReq("Account%2553id=AC2"), nil},
		{"form key case", formReq("accountsid=AC2&ACCOUNTSID=AC3"), nil},
		{"form A then B", formReq("AccountSid=A&AccountSid=B"), []string{"A", "B"}},
		{"form same twice", formReq("AccountSid=A&Body=x&AccountSid=A"), []string{"A"}},
		{"form value decoded", formReq("AccountSid=AC+1%20x%2B"), []string{"AC 1 x+"}},
		{"form key with plus", formReq("Account+Sid=B&+AccountSid=C&AccountSid+=D"), nil},
		{"form key with escaped space", formReq("AccountSid%20=B"), nil},
		{"form invalid escape in value kept", formReq("AccountSid=%zz&AccountSid=AC1%"), []string{"%zz", "AC1%"}},
		{"form invalid escape in key", formReq("Account%5Sid=B&AccountSi%d=C"), nil},
		{"form no value", formReq("AccountSid"), []string{""}},
		{"form empty value", formReq("AccountSid=&AccountSid=AC1"), []string{"", "AC1"}},
		{"form semicolon is not a separator", formReq("AccountSid=A;AccountSid=B"), []string{"A;AccountSid=B"}},
		{"form empty fields", formReq("&&AccountSid=A&&"), []string{"A"}},
		{"form value with equals", formReq("AccountSid=A=B"), []string{"A=B"}},
		{"form body ignored without HasBody", Request{URL: hook, Body: []byte("AccountSid=A"), ContentType: form}, nil},

		{"query", Request{URL: hook + "?AccountSid=Q"}, []string{"Q"}},
		{"query escaped key", Request{URL: hook + "?x=1&Account%53id=Q"}, []string{"Q"}},
		{"query after fragment is none", Request{URL: hook + "#?AccountSid=Q"}, nil},
		{"query cut at fragment", Request{URL: hook + "?AccountSid=Q#&AccountSid=F"}, []string{"Q"}},
		{"params then query", Request{URL: hook + "?AccountSid=Q", Params: url.Values{"AccountSid": {"P"}}}, []string{"P", "Q"}},
		{"form body then query", Request{URL: hook + "?AccountSid=Q&AccountSid=A", Body: []byte("AccountSid=A"), ContentType: form, HasBody: true},
			[]string{"A", "Q"}},
		{"query plus", Request{URL: hook + "?AccountSid=A+B"}, []string{"A B"}},

		{"json", jsonReq(`{"AccountSid":"A"}`), []string{"A"}},
		{"json snake and camel", jsonReq(`{"account_sid":"A","AccountSid":"B"}`), []string{"A", "B"}},
		{"json duplicate keys", jsonReq(`{"AccountSid":"A","AccountSid":"B","AccountSid":"A"}`), []string{"A", "B"}},
		{"json key case", jsonReq(`{"accountSID":"A","ACCOUNT_SID":"B","accountSid":"C","Account_Sid":"D"}`), []string{"A", "B", "C", "D"}},
		{"json escaped key", jsonReq(`{"Account\u0053id":"A"}`), []string{"A"}},
		{"json key folds like encoding/json", jsonReq(`{"Account\u017fid":"A","Accountſid":"B"}`), []string{"A", "B"}},
		{"json other keys", jsonReq(`{"AccountSid2":"A","account-sid":"B","Account Sid":"C"}`), nil},
		{"json value escapes", jsonReq(`{"AccountSid":"A\u0043\n\"\\\/"}`), []string{"AC\n\"\\/"}},
		{"json surrogate pair", jsonReq(`{"AccountSid":"\ud83d\ude00"}`), []string{"😀"}},
		{"json lone surrogate", jsonReq(`{"AccountSid":"\ud83dx"}`), []string{"\uFFFDx"}},
		{"json nested ignored", jsonReq(`{"data":{"AccountSid":"N"},"list":[{"account_sid":"M"}]}`), nil},
		{"json not a string", jsonReq(`{"AccountSid":["A"],"account_sid":{"x":"B"}}`), nil},
		{"json number and null", jsonReq(`{"AccountSid":12,"account_sid":null,"x":true}`), nil},
		{"json array body", jsonReq(`[{"AccountSid":"A"}]`), nil},
		{"json string body", jsonReq(`"AccountSid"`), nil},
		{"json invalid", jsonReq(`{"AccountSid":"A"`), nil},
		{"json trailing garbage", jsonReq(`{"AccountSid":"A"} x`), nil},
		{"json white space", jsonReq(" \r\n{ \"x\" : [1, {\"AccountSid\":\"N\"}, \"]\"] ,\t\"AccountSid\" : \"A\" , \"n\": -1.5e3 , \"account_sid\":\"B\" } \n"),
			[]string{"A", "B"}},
		{"json braces in strings", jsonReq(`{"x":"}\"{","y":"\\","AccountSid":"A"}`), []string{"A"}},
		{"json whatever the content type", Request{URL: hook, Body: []byte(`{"AccountSid":"A"}`), ContentType: "text/plain", HasBody: true}, []string{"A"}},
		{"json as a form", formReq(`{"AccountSid":"A"}`), nil},
		{"json then query", Request{URL: hook + "?AccountSid=Q", Body: []byte(`{"AccountSid":"J"}`), ContentType: "application/json", HasBody: true},
			[]string{"J", "Q"}},
		{"not a URL", Request{URL: "no url?AccountSid=Q"}, []string{"Q"}},
	}
	for _, tt := range tests {
		got := AccountSids(&tt.req)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: AccountSids (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestAccountSidsLarge is not parallel: allocsPerRun counts every
// allocation in the process.
func TestAccountSidsLarge(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	pad := strings.Repeat("x", 1<<20)
	var many strings.Builder
	for i := range 100_000 {
		many.WriteString("&AccountSid=AC" + strconv.Itoa(i))
	}
	var manyJSON strings.Builder
	manyJSON.WriteString(`{"x":0`)
	for i := range 50_000 {
		manyJSON.WriteString(`,"Account\u0053id":"AC` + strconv.Itoa(i) + `"`)
	}
	manyJSON.WriteString("}")
	tests := []struct {
		name      string
		req       Request
		want      []string
		maxAllocs float64
	}{
		{"1 MB form, claim at the end", Request{URL: "https://h/", Body: []byte("Body=" + pad + "&AccountSid=AC1"), ContentType: form, HasBody: true},
			[]string{"AC1"}, 3},
		{"1 MB key", Request{URL: "https://h/", Body: []byte(pad + "=1&Account%53id=AC1"), ContentType: form, HasBody: true},
			[]string{"AC1"}, 3},
		{"1 MB value", Request{URL: "https://h/", Body: []byte("AccountSid=" + pad), ContentType: form, HasBody: true},
			[]string{pad}, 4},
		{"100 000 claims", Request{URL: "https://h/", Body: []byte(many.String()), ContentType: form, HasBody: true},
			[]string{"AC0", "AC1", "AC2", "AC3", "AC4", "AC5", "AC6", "AC7"}, 16},
		{"1 MB JSON, claim at the end", Request{URL: "https://h/", Body: []byte(`{"Body":"` + pad + `","x":[[[{}]]],"AccountSid":"AC1"}`),
			ContentType: "application/json", HasBody: true}, []string{"AC1"}, 4},
		{"50 000 escaped JSON keys", Request{URL: "https://h/", Body: []byte(manyJSON.String()), ContentType: "application/json", HasBody: true},
			[]string{"AC0", "AC1", "AC2", "AC3", "AC4", "AC5", "AC6", "AC7"}, 20},
	}
	for _, tt := range tests {
		got := AccountSids(&tt.req)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: AccountSids (-want +got):\n%s", tt.name, diff)
		}
	}
	for _, tt := range tests {
		if allocs := allocsPerRun(t, 3, func() { AccountSids(&tt.req) }); allocs > tt.maxAllocs {
			t.Errorf("%s: AccountSids allocates %v times, want at most %v", tt.name, allocs, tt.maxAllocs)
		}
	}
}
