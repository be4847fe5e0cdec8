package twilioapi

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/twilioguard/twilioguard/signature"
)

// URLStatus classifies a webhook URL configured at Twilio.
type URLStatus string

// The statuses of an audited URL.
const (
	// Protected: under a protected base URL, on an account twilioguard
	// holds.
	Protected URLStatus = "protected"
	// Unprotected: under no protected base URL.
	Unprotected URLStatus = "unprotected"
	// Insecure: http://, readable and forgeable on the way.
	Insecure URLStatus = "insecure"
	// UnknownAccount: under a protected base URL, on an account twilioguard
	// does not hold, so its webhooks will be refused.
	UnknownAccount URLStatus = "unknown-account"
)

// Finding is one webhook URL configured at Twilio.
type Finding struct {
	Account string `json:"account"`
	// Resource is "phone_number" or "messaging_service".
	Resource    string `json:"resource"`
	ResourceSID string `json:"resourceSid"`
	// Name is the phone number or the service's friendly name.
	Name string `json:"name"`
	// Field is Twilio's name of the setting, e.g. voice_url.
	Field string `json:"field"`
	// URL is the configured URL, its password (if any) redacted.
	URL    string    `json:"url"`
	Status URLStatus `json:"status"`
}

// AccountNote names an account and why the audit says something of it.
type AccountNote struct {
	Account string `json:"account"`
	Reason  string `json:"reason"`
}

// Report is the result of [Audit].
type Report struct {
	Findings []Finding `json:"findings"`
	// Counts are the findings by status.
	Counts map[URLStatus]int `json:"counts"`
	// NotAtTwilio are accounts twilioguard holds that Twilio does not list
	// (as active or suspended) for the audit's credentials.
	NotAtTwilio []AccountNote `json:"notAtTwilio"`
	// NotAudited are accounts whose configuration could not be read.
	NotAudited []AccountNote `json:"notAudited"`
}

// BaseURL is a protected base URL: its origin and a path prefix matched at
// segment boundaries.
type BaseURL struct {
	scheme, host, port, path string
}

// ParseBaseURL parses a protected base URL such as
// https://hooks.example.com/twilio.
func ParseBaseURL(raw string) (BaseURL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return BaseURL{}, fmt.Errorf("protected base URL %q: want http(s)://host[:port][/path], without user, query or fragment", clean(raw, 100))
	}
	b, ok := baseOf(u)
	if !ok {
		return BaseURL{}, fmt.Errorf("protected base URL %q: bad port", clean(raw, 100))
	}
	return b, nil
}

// baseOf returns the origin and cleaned path of u.
func baseOf(u *url.URL) (BaseURL, bool) {
	port := u.Port()
	switch {
	case port == "" && u.Scheme == "https", port == "443" && u.Scheme == "https":
		port = "443"
	case port == "" && u.Scheme == "http", port == "80" && u.Scheme == "http":
		port = "80"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return BaseURL{}, false
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	// Dot segments are resolved as a server would before routing.
	return BaseURL{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: port, path: path.Clean(p)}, true
}

// covers reports whether b protects u: same scheme, host and port, and a
// path equal to b's or below it (never a mere string prefix:
// https://a.example/twilio does not cover https://a.example/twilio-evil).
func (b BaseURL) covers(u BaseURL) bool {
	if b.scheme != u.scheme || b.host != u.host || b.port != u.port {
		return false
	}
	return b.path == "/" || u.path == b.path || strings.HasPrefix(u.path, b.path+"/")
}

// Classify returns the status of a webhook URL on an account twilioguard
// holds or not.
func Classify(raw string, bases []BaseURL, held bool) URLStatus {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Unprotected
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return Insecure
	case "https":
	default:
		return Unprotected
	}
	u.Scheme = "https"
	target, ok := baseOf(u)
	if !ok {
		return Unprotected
	}
	for _, b := range bases {
		if b.covers(target) {
			if held {
				return Protected
			}
			return UnknownAccount
		}
	}
	return Unprotected
}

// Audit reads every webhook URL configured at Twilio for the known
// accounts and classifies it. The known accounts are the active and
// suspended accounts tw's credentials list (their own and their
// subaccounts) plus those twilioguard holds; each account's configuration
// is read with its own SID and auth token, as listed by Twilio. Accounts
// twilioguard holds that Twilio does not list are reported in
// Report.NotAtTwilio.
func Audit(ctx context.Context, tw *Client, svc AccountLister, bases []BaseURL) (*Report, error) {
	twAccounts, held, err := readAccounts(ctx, tw, svc)
	if err != nil {
		return nil, err
	}
	rep := &Report{Findings: []Finding{}, Counts: map[URLStatus]int{}, NotAtTwilio: []AccountNote{}, NotAudited: []AccountNote{}}
	listed := map[string]string{}
	for _, a := range twAccounts {
		listed[a.SID] = a.Status
		if a.Status == StatusClosed {
			continue
		}
		_, isHeld := held[a.SID]
		creds := Credentials{AccountSID: a.SID, Secret: a.AuthToken}
		add := func(resource, sid, name string, urls map[string]string) {
			for field, raw := range urls {
				st := Classify(raw, bases, isHeld)
				rep.Counts[st]++
				rep.Findings = append(rep.Findings, Finding{
					Account: a.SID, Resource: resource, ResourceSID: sid, Name: clean(name, 64),
					Field: field, URL: clean(signature.RedactURL(raw), 256), Status: st,
				})
			}
		}
		numbers, err := tw.phoneNumbers(ctx, creds)
		if err == nil {
			var services []MessagingService
			if services, err = tw.messagingServices(ctx, creds); err == nil {
				for _, n := range numbers {
					add("phone_number", n.SID, n.PhoneNumber, n.URLs)
				}
				for _, s := range services {
					add("messaging_service", s.SID, s.FriendlyName, s.URLs)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.NotAudited = append(rep.NotAudited, AccountNote{Account: a.SID, Reason: err.Error()})
		}
	}
	for sid := range held {
		switch st := listed[sid]; st {
		case "":
			rep.NotAtTwilio = append(rep.NotAtTwilio, AccountNote{Account: sid, Reason: "not listed for " + tw.creds.AccountSID})
		case StatusClosed:
			rep.NotAtTwilio = append(rep.NotAtTwilio, AccountNote{Account: sid, Reason: "closed"})
		}
	}
	slices.SortFunc(rep.Findings, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.Account, b.Account), strings.Compare(a.Resource, b.Resource),
			strings.Compare(a.ResourceSID, b.ResourceSID), strings.Compare(a.Field, b.Field))
	})
	byAccount := func(a, b AccountNote) int { return strings.Compare(a.Account, b.Account) }
	slices.SortFunc(rep.NotAtTwilio, byAccount)
	slices.SortFunc(rep.NotAudited, byAccount)
	return rep, nil
}
