package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"os"
	"strings"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
)

// paramFlag collects repeatable key=value form fields, in order.
type paramFlag []*twilioguardv1.Param

func (p *paramFlag) String() string { return fmt.Sprint(len(*p), " params") }
func (p *paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want key=value", v)
	}
	*p = append(*p, &twilioguardv1.Param{Key: k, Value: val})
	return nil
}

func (p paramFlag) values() url.Values {
	v := url.Values{}
	for _, kv := range p {
		v[kv.Key] = append(v[kv.Key], kv.Value)
	}
	return v
}

// requestFlags describe a webhook request on the command line.
type requestFlags struct {
	url         string
	params      paramFlag
	bodyFile    string
	contentType string
}

func (r *requestFlags) register(fs *flagSet) {
	fs.StringVar(&r.url, "url", "", "the full URL Twilio requested")
	fs.Var(&r.params, "d", "form field key=value (repeatable; as decoded)")
	fs.StringVar(&r.bodyFile, "body-file", "", "raw body file (form or JSON) instead of -d")
	fs.StringVar(&r.contentType, "content-type", "", "content type of --body-file (default: JSON when it starts with { or [, else form)")
}

// body reads --body-file and returns it with its content type: the one
// given, or, without one, JSON when it looks like JSON and a form otherwise.
// Without --body-file there is no body.
func (r *requestFlags) body() ([]byte, string, error) {
	if r.bodyFile == "" {
		return nil, "", nil
	}
	b, err := os.ReadFile(r.bodyFile)
	if err != nil {
		return nil, "", fmt.Errorf("--body-file: %w", err)
	}
	if r.contentType != "" {
		return b, r.contentType, nil
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return b, "application/json", nil
	}
	return b, "application/x-www-form-urlencoded", nil
}

// sign prints the X-Twilio-Signature Twilio would send for a request.
func sign(e env, args []string) error {
	var (
		r         requestFlags
		tokenFile string
		algorithm string
	)
	fs := newFlagSet(e, "sign", "sign --url URL [-d key=value]… [--body-file F --content-type T]   (token from TWILIOGUARD_AUTH_TOKEN or --auth-token-file)", false)
	r.register(fs)
	fs.StringVar(&tokenFile, "auth-token-file", "", "file with the auth token or SharedKey secret, - for stdin (else TWILIOGUARD_AUTH_TOKEN)")
	fs.StringVar(&algorithm, "algorithm", "HMAC_SHA1", "HMAC_SHA1 or HMAC_SHA256 (SharedKeys)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if r.url == "" {
		return errors.New("sign: --url is required")
	}
	secret, err := secretFrom(e, tokenFile, "TWILIOGUARD_AUTH_TOKEN")
	if err != nil {
		return err
	}
	if secret == "" {
		return errors.New("sign: no secret: set TWILIOGUARD_AUTH_TOKEN or --auth-token-file")
	}
	var alg signature.Algorithm
	switch algorithm {
	case "HMAC_SHA1":
		alg = signature.HMACSHA1
	case "HMAC_SHA256":
		alg = signature.HMACSHA256
	default:
		return fmt.Errorf("sign: --algorithm %q: want HMAC_SHA1 or HMAC_SHA256", algorithm)
	}
	body, contentType, err := r.body()
	if err != nil {
		return err
	}
	params := r.params.values()
	if body != nil {
		if len(r.params) > 0 {
			return errors.New("sign: give -d or --body-file, not both")
		}
		if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
			if params, err = signature.ParseForm(body); err != nil {
				return fmt.Errorf("sign: --body-file: %w", err)
			}
		} else {
			params = nil
			hash := signature.BodySHA256(body)
			u, err := url.Parse(r.url)
			if err != nil || u.Query().Get("bodySHA256") != hash {
				sep := "?"
				if strings.Contains(r.url, "?") {
					sep = "&"
				}
				return fmt.Errorf("sign: a JSON body is signed through the URL: use --url '%s%sbodySHA256=%s'", r.url, sep, hash)
			}
		}
	}
	fmt.Fprintln(e.stdout, signature.SignWith(alg, secret, r.url, params))
	return nil
}

// verify asks a running service whether a request is genuine. It prints the
// verdict and exits 0 when valid, 1 when not.
func verify(ctx context.Context, e env, args []string) error {
	var (
		r        requestFlags
		rem      remote
		sig      string
		settings string
		account  string
	)
	fs := newFlagSet(e, "verify", "verify --url URL --signature SIG [-d key=value]… [--body-file F --content-type T] [--account A]", false)
	rem.register(e, fs)
	r.register(fs)
	fs.StringVar(&sig, "signature", "", "the X-Twilio-Signature value")
	fs.StringVar(&settings, "signature-settings", "", "the X-Twilio-Webhooks-Signature-Settings value")
	fs.StringVar(&account, "account", "", "account SID or alias (default: the AccountSid field)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	body, contentType, err := r.body()
	if err != nil {
		return err
	}
	req := &twilioguardv1.VerifyWebhookRequest{
		Url: r.url, Params: r.params, Signature: sig, SignatureSettings: settings, Account: account,
		Body: body, ContentType: contentType,
	}
	c, err := rem.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.VerifyWebhook(ctx, req)
	if err != nil {
		return rpcError(err)
	}
	if err := printJSON(e.stdout, resp); err != nil {
		return err
	}
	if !resp.Valid {
		return exitError(1)
	}
	return nil
}
