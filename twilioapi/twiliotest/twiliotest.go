// Package twiliotest is a fake of the parts of Twilio's REST API that
// twilioguard uses, for tests: accounts and subaccounts with their auth
// tokens (GET /2010-04-01/Accounts.json and /Accounts/{Sid}.json), incoming
// phone numbers (/Accounts/{Sid}/IncomingPhoneNumbers.json), Messaging
// Services (GET /v1/Services on messaging.twilio.com), and secondary auth
// tokens (POST and DELETE /v1/AuthTokens/Secondary, POST
// /v1/AuthTokens/Promote on accounts.twilio.com).
//
// It behaves as Twilio does where twilioguard depends on it: every request
// must name the Twilio host it is meant for in its Host header; Basic
// authentication with an account SID and its auth token (primary or
// secondary) or an API key and its secret, checked per account (a parent
// sees its subaccounts, a subaccount only itself, a closed account
// nothing); pages with PageSize, Page and PageToken and next_page_uri
// (2010 API) or meta.next_page_url (v1 APIs); Twilio's error bodies. Its
// JSON is twilio-go's model types, so a test that reads it through
// twilio-go reads what twilio-go reads from Twilio. Faults (401, 404, 429
// with Retry-After, 5xx) are injected with [Server.Inject].
package twiliotest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	accountsv1 "github.com/twilio/twilio-go/rest/accounts/v1"
	apiv2010 "github.com/twilio/twilio-go/rest/api/v2010"
	messagingv1 "github.com/twilio/twilio-go/rest/messaging/v1"

	"github.com/twilioguard/twilioguard/signature"
)

// Twilio's hosts, as the Host header of a request must name them.
const (
	HostAPI       = "api.twilio.com"
	HostAccounts  = "accounts.twilio.com"
	HostMessaging = "messaging.twilio.com"
)

// Account statuses.
const (
	Active    = "active"
	Suspended = "suspended"
	Closed    = "closed"
)

// Server is a running fake Twilio REST API. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the server's origin, for --twilio-api-url.
	URL string

	mu       sync.Mutex
	accounts map[string]*account
	keys     map[string]apiKey
	faults   []*Fault
	requests []Request
}

type account struct {
	sid, parent, friendly, status string
	token, secondary              string
	created                       time.Time
	numbers                       []apiv2010.ApiV2010IncomingPhoneNumber
	services                      []messagingv1.MessagingV1Service
}

type apiKey struct{ account, secret string }

// Fault makes the server answer matching requests with an error.
type Fault struct {
	// Method and Path select requests (empty: any); Path matches as a
	// prefix of the request path.
	Method, Path string
	// Status is the answer's status code, with Twilio's error body unless
	// Body is set.
	Status int
	// Body, when set, is sent instead, as text/html (a proxy's page).
	Body string
	// RetryAfter is the Retry-After header, when set.
	RetryAfter string
	// Times is how many requests get the fault; 0 means all.
	Times int
}

// Request is a request the server received. It never holds a password.
type Request struct {
	Method, Host, Path, Query string
	// User is the Basic user name (an account SID or API key SID).
	User string
	// Status is the status code of the answer.
	Status int
}

// NewServer starts a fake Twilio API, stopped when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{accounts: map[string]*account{}, keys: map[string]apiKey{}}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// NewAccount creates a main (parent) account and returns its SID and auth
// token.
func (s *Server) NewAccount(friendlyName string) (sid, token string) {
	return s.add("", friendlyName)
}

// NewSubaccount creates an active subaccount of parent.
func (s *Server) NewSubaccount(parent, friendlyName string) (sid, token string) {
	return s.add(parent, friendlyName)
}

func (s *Server) add(parent, friendly string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if parent != "" && s.accounts[parent] == nil {
		panic("twiliotest: no account " + parent)
	}
	a := &account{sid: "AC" + hexID(), parent: parent, friendly: friendly, status: Active, token: hexID(), created: time.Now().UTC()}
	s.accounts[a.sid] = a
	return a.sid, a.token
}

// SetStatus sets an account's status (Active, Suspended or Closed).
func (s *Server) SetStatus(sid, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.must(sid).status = status
}

// SetFriendlyName renames an account.
func (s *Server) SetFriendlyName(sid, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.must(sid).friendly = name
}

// ChangeAuthToken gives an account a new auth token at once, as a
// promotion in the Twilio Console does, and returns it.
func (s *Server) ChangeAuthToken(sid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.must(sid)
	a.token, a.secondary = hexID(), ""
	return a.token
}

// AuthToken returns an account's primary auth token: the one Twilio signs
// its webhooks with.
func (s *Server) AuthToken(sid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.must(sid).token
}

// SecondaryAuthToken returns an account's secondary auth token, or "".
func (s *Server) SecondaryAuthToken(sid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.must(sid).secondary
}

// Sign returns the X-Twilio-Signature Twilio would send now for a webhook
// of account sid to rawURL with form params.
func (s *Server) Sign(sid, rawURL string, params url.Values) string {
	return signature.Sign(s.AuthToken(sid), rawURL, params)
}

// NewAPIKey creates an API key of an account and returns its SID and
// secret.
func (s *Server) NewAPIKey(sid string) (key, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.must(sid)
	key, secret = "SK"+hexID(), hexID()
	s.keys[key] = apiKey{account: sid, secret: secret}
	return key, secret
}

// PhoneNumber is the webhook configuration of a phone number to add.
type PhoneNumber struct {
	Number, VoiceURL, VoiceFallbackURL, StatusCallback, SMSURL, SMSFallbackURL string
}

// AddPhoneNumber gives an account an incoming phone number and returns its
// SID.
func (s *Server) AddPhoneNumber(sid string, n PhoneNumber) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.must(sid)
	pn := "PN" + hexID()
	date := a.created.Format(time.RFC1123Z)
	a.numbers = append(a.numbers, apiv2010.ApiV2010IncomingPhoneNumber{
		AccountSid: &a.sid, Sid: &pn, PhoneNumber: &n.Number, FriendlyName: &n.Number,
		VoiceUrl: ptr(n.VoiceURL), VoiceFallbackUrl: ptr(n.VoiceFallbackURL), StatusCallback: ptr(n.StatusCallback),
		SmsUrl: ptr(n.SMSURL), SmsFallbackUrl: ptr(n.SMSFallbackURL),
		VoiceMethod: ptr("POST"), SmsMethod: ptr("POST"), ApiVersion: ptr("2010-04-01"),
		DateCreated: &date, DateUpdated: &date, Status: ptr("in-use"),
		Uri: ptr("/2010-04-01/Accounts/" + a.sid + "/IncomingPhoneNumbers/" + pn + ".json"),
	})
	return pn
}

// MessagingService is the webhook configuration of a Messaging Service to
// add.
type MessagingService struct {
	FriendlyName, InboundRequestURL, FallbackURL, StatusCallback string
}

// AddMessagingService gives an account a Messaging Service and returns its
// SID.
func (s *Server) AddMessagingService(sid string, m MessagingService) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.must(sid)
	mg := "MG" + hexID()
	a.services = append(a.services, messagingv1.MessagingV1Service{
		Sid: &mg, AccountSid: &a.sid, FriendlyName: &m.FriendlyName, DateCreated: &a.created, DateUpdated: &a.created,
		InboundRequestUrl: ptr(m.InboundRequestURL), FallbackUrl: ptr(m.FallbackURL), StatusCallback: ptr(m.StatusCallback),
		InboundMethod: ptr("POST"), FallbackMethod: ptr("POST"), ValidityPeriod: 36000,
		Url: ptr("https://" + HostMessaging + "/v1/Services/" + mg),
	})
	return mg
}

// Inject adds a fault. Faults are tried in the order added.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// must returns an account; a test naming one that does not exist is a bug.
func (s *Server) must(sid string) *account {
	a := s.accounts[sid]
	if a == nil {
		panic("twiliotest: no account " + sid)
	}
	return a
}

// route is one endpoint: its host, method and path pattern.
type route struct {
	host, method, pattern string
	handle                func(s *Server, w http.ResponseWriter, r *http.Request, caller *account, arg string)
}

var routes = []route{
	{HostAPI, http.MethodGet, "/2010-04-01/Accounts.json", (*Server).listAccounts},
	{HostAPI, http.MethodGet, "/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", (*Server).listNumbers},
	{HostAPI, http.MethodGet, "/2010-04-01/Accounts/{}.json", (*Server).fetchAccount},
	{HostAccounts, http.MethodPost, "/v1/AuthTokens/Secondary", (*Server).createSecondary},
	{HostAccounts, http.MethodDelete, "/v1/AuthTokens/Secondary", (*Server).deleteSecondary},
	{HostAccounts, http.MethodPost, "/v1/AuthTokens/Promote", (*Server).promote},
	{HostMessaging, http.MethodGet, "/v1/Services", (*Server).listServices},
}

// match reports whether path fits pattern, where {} is one path segment
// without '/', returned as arg.
func match(pattern, path string) (arg string, ok bool) {
	before, after, hasArg := strings.Cut(pattern, "{}")
	if !hasArg {
		return "", path == pattern
	}
	if !strings.HasPrefix(path, before) || !strings.HasSuffix(path, after) || len(path) < len(before)+len(after) {
		return "", false
	}
	arg = path[len(before) : len(path)-len(after)]
	return arg, arg != "" && !strings.Contains(arg, "/")
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	user, _, _ := r.BasicAuth()
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, User: user, Status: rec.status})
		s.mu.Unlock()
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.fault(r); f != nil {
		if f.RetryAfter != "" {
			rec.Header().Set("Retry-After", f.RetryAfter)
		}
		if f.Body != "" {
			rec.Header().Set("Content-Type", "text/html")
			rec.WriteHeader(f.Status)
			_, _ = rec.Write([]byte(f.Body))
			return
		}
		writeError(rec, f.Status, 20000+f.Status, http.StatusText(f.Status))
		return
	}
	for _, rt := range routes {
		arg, ok := match(rt.pattern, r.URL.Path)
		if !ok || rt.host != r.Host {
			continue
		}
		if r.Method != rt.method {
			writeError(rec, http.StatusMethodNotAllowed, 20004, "Method not allowed")
			return
		}
		caller := s.authenticate(r, rt.host == HostAccounts)
		if caller == nil {
			rec.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
			writeError(rec, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		rt.handle(s, rec, r, caller, arg)
		return
	}
	// A request whose Host names the wrong Twilio host finds nothing, as it
	// would at Twilio.
	writeError(rec, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
}

func (s *Server) fault(r *http.Request) *Fault {
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			if f.Times > 0 {
				if f.Times--; f.Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
			}
			return f
		}
	}
	return nil
}

// authenticate returns the account a request acts for, or nil. Auth token
// endpoints take an account's own token only, not an API key.
func (s *Server) authenticate(r *http.Request, tokenOnly bool) *account {
	user, pass, ok := r.BasicAuth()
	if !ok || pass == "" {
		return nil
	}
	var a *account
	switch {
	case strings.HasPrefix(user, "AC"):
		a = s.accounts[user]
		if a == nil || (pass != a.token && pass != a.secondary) {
			return nil
		}
	case strings.HasPrefix(user, "SK") && !tokenOnly:
		k, found := s.keys[user]
		if !found || pass != k.secret {
			return nil
		}
		a = s.accounts[k.account]
	}
	if a == nil || a.status == Closed {
		return nil
	}
	return a
}

// owns reports whether caller may see account a: itself or a subaccount.
func owns(caller, a *account) bool {
	return a != nil && (a == caller || a.parent == caller.sid)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, caller *account, _ string) {
	var items []*account
	for _, a := range s.accounts {
		if owns(caller, a) && (r.URL.Query().Get("Status") == "" || r.URL.Query().Get("Status") == a.status) {
			items = append(items, a)
		}
	}
	page, ok := paginate(w, r, items, func(a *account) string { return a.sid })
	if !ok {
		return
	}
	out := make([]apiv2010.ApiV2010Account, len(page.items))
	for i, a := range page.items {
		out[i] = accountJSON(a)
	}
	writeJSON(w, http.StatusOK, page.envelope2010(r, "accounts", out))
}

func (s *Server) fetchAccount(w http.ResponseWriter, r *http.Request, caller *account, sid string) {
	a := s.accounts[sid]
	if !owns(caller, a) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	writeJSON(w, http.StatusOK, accountJSON(a))
}

func (s *Server) listNumbers(w http.ResponseWriter, r *http.Request, caller *account, sid string) {
	a := s.accounts[sid]
	if !owns(caller, a) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	page, ok := paginate(w, r, a.numbers, func(n apiv2010.ApiV2010IncomingPhoneNumber) string { return *n.Sid })
	if ok {
		writeJSON(w, http.StatusOK, page.envelope2010(r, "incoming_phone_numbers", page.items))
	}
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, caller *account, _ string) {
	page, ok := paginate(w, r, caller.services, func(m messagingv1.MessagingV1Service) string { return *m.Sid })
	if !ok {
		return
	}
	base := "https://" + HostMessaging + r.URL.Path
	meta := map[string]any{
		"page": page.number, "page_size": page.size, "key": "services",
		"first_page_url": base + "?" + pageQuery(r, page.size, 0, ""), "url": base + "?" + page.query,
		"previous_page_url": nil, "next_page_url": nil,
	}
	if page.number > 0 {
		meta["previous_page_url"] = base + "?" + pageQuery(r, page.size, page.number-1, "")
	}
	if page.next != "" {
		meta["next_page_url"] = base + "?" + page.next
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": page.items, "meta": meta})
}

func (s *Server) createSecondary(w http.ResponseWriter, _ *http.Request, caller *account, _ string) {
	caller.secondary = hexID()
	now := time.Now().UTC()
	writeJSON(w, http.StatusCreated, accountsv1.AccountsV1SecondaryAuthToken{
		AccountSid: &caller.sid, SecondaryAuthToken: &caller.secondary, DateCreated: &now, DateUpdated: &now,
		Url: ptr("https://" + HostAccounts + "/v1/AuthTokens/Secondary"),
	})
}

func (s *Server) deleteSecondary(w http.ResponseWriter, _ *http.Request, caller *account, _ string) {
	caller.secondary = ""
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) promote(w http.ResponseWriter, _ *http.Request, caller *account, _ string) {
	if caller.secondary == "" {
		writeError(w, http.StatusBadRequest, 20001, "No secondary Auth Token to promote")
		return
	}
	caller.token, caller.secondary = caller.secondary, ""
	now := time.Now().UTC()
	writeJSON(w, http.StatusOK, accountsv1.AccountsV1AuthTokenPromotion{
		AccountSid: &caller.sid, AuthToken: &caller.token, DateCreated: &now, DateUpdated: &now,
		Url: ptr("https://" + HostAccounts + "/v1/AuthTokens/Promote"),
	})
}

func accountJSON(a *account) apiv2010.ApiV2010Account {
	owner := a.sid
	if a.parent != "" {
		owner = a.parent
	}
	date := a.created.Format(time.RFC1123Z)
	uri := "/2010-04-01/Accounts/" + a.sid + ".json"
	return apiv2010.ApiV2010Account{
		AuthToken: ptr(a.token), DateCreated: &date, DateUpdated: &date, FriendlyName: ptr(a.friendly),
		OwnerAccountSid: &owner, Sid: ptr(a.sid), Status: ptr(a.status), Type: ptr("Full"), Uri: &uri,
		SubresourceUris: &map[string]any{
			"incoming_phone_numbers": "/2010-04-01/Accounts/" + a.sid + "/IncomingPhoneNumbers.json",
		},
	}
}

// page is one page of a list, as Twilio cuts it.
type page[T any] struct {
	items        []T
	number, size int
	start        int
	// query is this page's query; next the next page's, or "".
	query, next string
}

// paginate cuts items (sorted by key) as Twilio does: PageSize (default
// 50, at most 1000), Page, and PageToken "PA" + the last key of the
// previous page, which wins over Page.
func paginate[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string) (page[T], bool) {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	q := r.URL.Query()
	p := page[T]{size: 50}
	for name, dst := range map[string]*int{"PageSize": &p.size, "Page": &p.number} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || (name == "PageSize" && n == 0) {
				writeError(w, http.StatusBadRequest, 20001, "Invalid "+name)
				return p, false
			}
			*dst = n
		}
	}
	p.size = min(p.size, 1000)
	p.start = p.number * p.size
	if tok := q.Get("PageToken"); tok != "" {
		after := strings.TrimPrefix(tok, "PA")
		p.start = len(items)
		for i, it := range items {
			if key(it) > after {
				p.start = i
				break
			}
		}
	}
	end := min(p.start+p.size, len(items))
	if p.start < end {
		p.items = items[p.start:end]
	}
	p.query = pageQuery(r, p.size, p.number, q.Get("PageToken"))
	if end < len(items) {
		p.next = pageQuery(r, p.size, p.number+1, "PA"+key(items[end-1]))
	}
	return p, true
}

// pageQuery is the query of a page: the request's filters, then PageSize,
// Page and PageToken, as Twilio writes them.
func pageQuery(r *http.Request, size, number int, token string) string {
	q := r.URL.Query()
	q.Del("PageSize")
	q.Del("Page")
	q.Del("PageToken")
	s := q.Encode()
	if s != "" {
		s += "&"
	}
	s += "PageSize=" + strconv.Itoa(size) + "&Page=" + strconv.Itoa(number)
	if token != "" {
		s += "&PageToken=" + url.QueryEscape(token)
	}
	return s
}

// envelope2010 is a page of the 2010 API: the items under key and the
// paging fields.
func (p page[T]) envelope2010(r *http.Request, key string, items any) map[string]any {
	uri := r.URL.Path + "?"
	env := map[string]any{
		key: items, "page": p.number, "page_size": p.size, "start": p.start, "end": max(p.start+len(p.items)-1, p.start),
		"uri": uri + p.query, "first_page_uri": uri + pageQuery(r, p.size, 0, ""),
		"previous_page_uri": nil, "next_page_uri": nil,
	}
	if p.number > 0 {
		env["previous_page_uri"] = uri + pageQuery(r, p.size, p.number-1, "")
	}
	if p.next != "" {
		env["next_page_uri"] = uri + p.next
	}
	return env
}

// writeError writes Twilio's error body, shaped by twilio-go's type.
func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, twclient.TwilioRestError{
		Code: code, Message: message, Status: status,
		MoreInfo: "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func hexID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
