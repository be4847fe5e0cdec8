// Package twilioapi connects twilioguard to Twilio's REST API through
// twilio-go: it imports the accounts of a Twilio parent account and its
// subaccounts with their auth tokens ([Import], and [Syncer] for a running
// service), rotates an account's auth token through Twilio with no moment at
// which a webhook fails ([Rotate]), and audits the webhook URLs configured
// at Twilio ([Audit]).
//
// Every change goes through twilioguard's AccountService (the admin API),
// never to a database: the CLI passes a remote client, `serve` passes its
// in-process server; both satisfy [AccountService].
//
// Twilio credentials and tokens never appear in an error, a log line or a
// metric of this package: errors name accounts by SID and secrets by
// fingerprint at most.
package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	accountsv1 "github.com/twilio/twilio-go/rest/accounts/v1"
	apiv2010 "github.com/twilio/twilio-go/rest/api/v2010"
	messagingv1 "github.com/twilio/twilio-go/rest/messaging/v1"

	"github.com/twilioguard/twilioguard/store"
)

// DefaultPageSize is the page size of list requests: Twilio's largest.
const DefaultPageSize = 1000

// Limits of one request to Twilio.
const (
	// MaxAttempts bounds the attempts of one request that Twilio answers
	// 429 (or 5xx, for reads).
	MaxAttempts = 4
	// MaxRetryAfter is the longest Retry-After waited for; a longer one ends
	// the request with an error saying when to retry.
	MaxRetryAfter = time.Minute
	// RequestTimeout bounds one attempt of one request, its answer's body
	// included.
	RequestTimeout = time.Minute
)

// Twilio account statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusClosed    = "closed"
)

// Options configure a [Client]. The zero value talks to Twilio.
type Options struct {
	// APIURL, when set, receives every REST call instead of Twilio's hosts:
	// same path and query, with the Host header naming the Twilio host the
	// call was meant for (api.twilio.com, accounts.twilio.com,
	// messaging.twilio.com). For tests against a fake Twilio API.
	APIURL string
	// PageSize is the page size of list requests (default
	// [DefaultPageSize]).
	PageSize int
}

// Client calls Twilio's REST API with one set of credentials (usually a
// parent account's) and, for the calls Twilio only accepts from an account
// itself, with that account's SID and auth token. Create one with
// [NewClient]; it is safe for concurrent use.
type Client struct {
	creds     Credentials
	transport *transport
	pageSize  int
}

// NewClient returns a client that authenticates with creds.
func NewClient(creds Credentials, opts Options) (*Client, error) {
	if err := creds.check(); err != nil {
		return nil, err
	}
	t, err := newTransport(opts)
	if err != nil {
		return nil, err
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	return &Client{creds: creds, transport: t, pageSize: opts.PageSize}, nil
}

// session is twilio-go's services for one operation, authenticated with
// one set of credentials. twilio-go sends every request with
// context.Background(), so the transport carries ctx instead.
type session struct {
	api       *apiv2010.ApiService
	accounts  *accountsv1.ApiService
	messaging *messagingv1.ApiService
}

func (c *Client) session(ctx context.Context, creds Credentials) *session {
	hc := &http.Client{
		Transport: c.transport.with(ctx),
		// Never follow a redirect: it would carry the credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tc := &twclient.Client{Credentials: twclient.NewCredentials(creds.username(), creds.Secret.Reveal()), HTTPClient: hc}
	tc.SetAccountSid(creds.AccountSID)
	rh := twclient.NewRequestHandler(tc)
	return &session{
		api:       apiv2010.NewApiService(rh),
		accounts:  accountsv1.NewApiService(rh),
		messaging: messagingv1.NewApiService(rh),
	}
}

// Account is a Twilio account as its parent's credentials see it.
type Account struct {
	SID          string
	FriendlyName string
	// Status is StatusActive, StatusSuspended or StatusClosed.
	Status    string
	AuthToken store.Secret
}

// accounts returns the account the client's credentials belong to and all
// its subaccounts (GET /2010-04-01/Accounts.json, every page).
func (c *Client) accounts(ctx context.Context) ([]Account, error) {
	params := (&apiv2010.ListAccountParams{}).SetPageSize(c.pageSize)
	list, err := c.session(ctx, c.creds).api.ListAccount(params)
	if err != nil {
		return nil, twilioError("list accounts", err)
	}
	out := make([]Account, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, a := range list {
		acct, err := accountFrom(a)
		if err != nil {
			return nil, err
		}
		if seen[acct.SID] {
			return nil, fmt.Errorf("list accounts: Twilio listed %s twice (was the list changing while it was read? try again)", acct.SID)
		}
		seen[acct.SID] = true
		out = append(out, acct)
	}
	return out, nil
}

// account fetches one account (GET /2010-04-01/Accounts/{sid}.json).
func (c *Client) account(ctx context.Context, sid string) (Account, error) {
	a, err := c.session(ctx, c.creds).api.FetchAccount(sid)
	if err != nil {
		return Account{}, twilioError("fetch account "+sid, err)
	}
	return accountFrom(*a)
}

func accountFrom(a apiv2010.ApiV2010Account) (Account, error) {
	acct := Account{SID: deref(a.Sid), FriendlyName: deref(a.FriendlyName), Status: deref(a.Status), AuthToken: store.Secret(deref(a.AuthToken))}
	if !isSID(acct.SID, "AC") {
		return Account{}, fmt.Errorf("account SID %q from Twilio: want AC followed by 32 hex digits", clean(acct.SID, 40))
	}
	switch acct.Status {
	case StatusActive, StatusSuspended:
		if acct.AuthToken == "" {
			return Account{}, fmt.Errorf("no auth token from Twilio for %s: the credentials must be the parent account's auth token or a Main API key", acct.SID)
		}
	case StatusClosed:
	default:
		return Account{}, fmt.Errorf("account %s from Twilio has an unknown status %q", acct.SID, clean(acct.Status, 20))
	}
	return acct, nil
}

// PhoneNumber is the webhook configuration of a Twilio phone number.
type PhoneNumber struct {
	SID, PhoneNumber string
	// URLs by Twilio field name (voice_url, sms_url, …); empty ones left out.
	URLs map[string]string
}

// phoneNumbers lists the incoming phone numbers of the account creds
// belong to.
func (c *Client) phoneNumbers(ctx context.Context, creds Credentials) ([]PhoneNumber, error) {
	params := (&apiv2010.ListIncomingPhoneNumberParams{}).SetPathAccountSid(creds.AccountSID).SetPageSize(c.pageSize)
	list, err := c.session(ctx, creds).api.ListIncomingPhoneNumber(params)
	if err != nil {
		return nil, twilioError("list phone numbers of "+creds.AccountSID, err)
	}
	out := make([]PhoneNumber, 0, len(list))
	for _, n := range list {
		out = append(out, PhoneNumber{SID: deref(n.Sid), PhoneNumber: deref(n.PhoneNumber), URLs: nonEmpty(map[string]*string{
			"voice_url":          n.VoiceUrl,
			"voice_fallback_url": n.VoiceFallbackUrl,
			"status_callback":    n.StatusCallback,
			"sms_url":            n.SmsUrl,
			"sms_fallback_url":   n.SmsFallbackUrl,
		})})
	}
	return out, nil
}

// MessagingService is the webhook configuration of a Messaging Service.
type MessagingService struct {
	SID, FriendlyName string
	// URLs by Twilio field name (inbound_request_url, …); empty ones left
	// out.
	URLs map[string]string
}

// messagingServices lists the Messaging Services of the account creds
// belong to.
func (c *Client) messagingServices(ctx context.Context, creds Credentials) ([]MessagingService, error) {
	params := (&messagingv1.ListServiceParams{}).SetPageSize(c.pageSize)
	list, err := c.session(ctx, creds).messaging.ListService(params)
	if err != nil {
		return nil, twilioError("list messaging services of "+creds.AccountSID, err)
	}
	out := make([]MessagingService, 0, len(list))
	for _, s := range list {
		out = append(out, MessagingService{SID: deref(s.Sid), FriendlyName: deref(s.FriendlyName), URLs: nonEmpty(map[string]*string{
			"inbound_request_url": s.InboundRequestUrl,
			"fallback_url":        s.FallbackUrl,
			"status_callback":     s.StatusCallback,
		})})
	}
	return out, nil
}

// createSecondaryToken creates a secondary auth token for the account
// creds belong to (POST /v1/AuthTokens/Secondary on accounts.twilio.com).
func (c *Client) createSecondaryToken(ctx context.Context, creds Credentials) (store.Secret, error) {
	r, err := c.session(ctx, creds).accounts.CreateSecondaryAuthToken(nil)
	if err != nil {
		return "", twilioError("create a secondary auth token for "+creds.AccountSID, err)
	}
	tok := store.Secret(deref(r.SecondaryAuthToken))
	if tok == "" {
		return "", fmt.Errorf("create a secondary auth token for %s: Twilio's answer holds no token", creds.AccountSID)
	}
	return tok, nil
}

// promoteSecondaryToken makes the secondary auth token primary (POST
// /v1/AuthTokens/Promote on accounts.twilio.com) and returns the new
// primary.
func (c *Client) promoteSecondaryToken(ctx context.Context, creds Credentials) (store.Secret, error) {
	r, err := c.session(ctx, creds).accounts.UpdateAuthTokenPromotion(nil)
	if err != nil {
		return "", twilioError("promote the secondary auth token of "+creds.AccountSID, err)
	}
	return store.Secret(deref(r.AuthToken)), nil
}

// twilioError names the operation and, when Twilio answered with an error,
// returns that answer as an *Error rather than twilio-go's wrapping.
func twilioError(op string, err error) error {
	var te *Error
	if errors.As(err, &te) {
		return fmt.Errorf("%s: %w", op, te)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Its URL has no secret, but its message repeats Twilio's host and
		// path, which the operation already names.
		return fmt.Errorf("%s: %w", op, ue.Err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonEmpty(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s := deref(v); s != "" {
			out[k] = s
		}
	}
	return out
}
