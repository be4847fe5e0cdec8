package signature_test

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/twilioguard/twilioguard/signature"
)

func ExampleSign() {
	// The example from Twilio's webhook security documentation.
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
	fmt.Println(signature.Sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params))
	// Output: RSOYDt4T1cUTdK1PDd93/VVr8B8=
}

func ExampleVerify() {
	params := url.Values{"Body": {"hello"}, "From": {"+14158675309"}}
	sig := signature.Sign("token", "https://example.com/sms", params)

	// A proxy added the default port: still valid.
	fmt.Println(signature.Verify("token", "https://example.com:443/sms", params, sig))

	// The body was changed: a mismatch.
	params.Set("Body", "goodbye")
	err := signature.Verify("token", "https://example.com/sms", params, sig)
	fmt.Println(errors.Is(err, signature.ErrMismatch))
	// Output:
	// <nil>
	// true
}

func ExampleCheck() {
	creds := []signature.Credential{
		{Name: "auth_token", Secret: "new-token"},
		{Name: "previous_auth_token", Secret: "old-token"},
	}
	req := &signature.Request{
		URL:         "https://example.com/sms",
		Body:        []byte("Body=hi&From=%2B14158675309"),
		ContentType: "application/x-www-form-urlencoded",
		HasBody:     true,
		Signature:   signature.Sign("old-token", "https://example.com/sms", url.Values{"Body": {"hi"}, "From": {"+14158675309"}}),
	}
	m, err := signature.Check(req, creds)
	fmt.Println(creds[m.Credential].Name, m.URL, err)
	// Output: previous_auth_token https://example.com/sms <nil>
}

func ExampleDiagnose() {
	params := url.Values{"Body": {"hi"}}
	creds := []signature.Credential{{Name: "auth_token", Secret: "token"}}
	req := &signature.Request{
		URL:       "http://example.com/sms", // as seen behind a TLS-terminating proxy
		Params:    params,
		Signature: signature.Sign("token", "https://example.com/sms", params),
	}
	if _, err := signature.Check(req, creds); errors.Is(err, signature.ErrMismatch) {
		fmt.Println(signature.Diagnose(req, creds))
	}
	// Output: signature matches the https:// form of this URL: a proxy terminates TLS; configure the public base URL or trust X-Forwarded-Proto from the proxy
}

func ExampleNewCredential() {
	// Prepare credentials once, for example when an account is loaded, and
	// use them for every request.
	creds := []signature.Credential{signature.NewCredential("auth_token", "token", signature.HMACSHA1)}
	params := url.Values{"Body": {"hi"}}
	req := &signature.Request{
		URL:       "https://example.com/sms",
		Params:    params,
		Signature: signature.Sign("token", "https://example.com/sms", params),
	}
	m, err := signature.Check(req, creds)
	fmt.Println(creds[m.Credential].Name, err)
	// Output: auth_token <nil>
}

func ExampleAccountSids() {
	// The query names another account, in a spelling an application
	// decodes to AccountSid.
	req := &signature.Request{
		URL:         "https://example.com/sms?Account%53id=AC2",
		Body:        []byte("AccountSid=AC1&Body=hi"),
		ContentType: "application/x-www-form-urlencoded",
		HasBody:     true,
	}
	fmt.Println(signature.AccountSids(req))
	// Output: [AC1 AC2]
}
