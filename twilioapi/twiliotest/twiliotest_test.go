package twiliotest_test

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	twclient "github.com/twilio/twilio-go/client"
	accountsv1 "github.com/twilio/twilio-go/rest/accounts/v1"
	apiv2010 "github.com/twilio/twilio-go/rest/api/v2010"
	messagingv1 "github.com/twilio/twilio-go/rest/messaging/v1"

	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

// toFake sends requests to the fake; with host set, the Host header names
// it instead of the host the request was meant for.
type toFake struct {
	fake *url.URL
	host string
}

func (t toFake) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Host = req.URL.Host
	if t.host != "" {
		r.Host = t.host
	}
	r.URL.Scheme, r.URL.Host = t.fake.Scheme, t.fake.Host
	return http.DefaultTransport.RoundTrip(r)
}

// services returns twilio-go's services authenticated as user:pass,
// talking to the fake.
func services(t *testing.T, s *twiliotest.Server, user, pass, host string) (*apiv2010.ApiService, *accountsv1.ApiService, *messagingv1.ApiService) {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &twclient.Client{Credentials: twclient.NewCredentials(user, pass), HTTPClient: &http.Client{Transport: toFake{u, host}}}
	c.SetAccountSid(user)
	rh := twclient.NewRequestHandler(c)
	return apiv2010.NewApiService(rh), accountsv1.NewApiService(rh), messagingv1.NewApiService(rh)
}

func status(err error) int {
	var te *twclient.TwilioRestError
	if errors.As(err, &te) {
		return te.Status
	}
	return 0
}

func TestFakeAuthenticatesPerAccount(t *testing.T) {
	t.Parallel()
	s := twiliotest.NewServer(t)
	parent, token := s.NewAccount("parent")
	sub, subToken := s.NewSubaccount(parent, "sub")
	other, otherToken := s.NewSubaccount(parent, "other")

	api, _, _ := services(t, s, parent, token, "")
	if list, err := api.ListAccount(nil); err != nil || len(list) != 3 {
		t.Errorf("the parent lists %d accounts (%v); want itself and 2 subaccounts", len(list), err)
	}
	subAPI, subAccounts, _ := services(t, s, sub, subToken, "")
	if list, err := subAPI.ListAccount(nil); err != nil || len(list) != 1 || *list[0].Sid != sub {
		t.Errorf("a subaccount lists %v (%v); want only itself", list, err)
	}
	if _, err := subAPI.FetchAccount(other); status(err) != http.StatusNotFound {
		t.Errorf("a subaccount fetching its sibling: %v; want 404", err)
	}
	if _, err := subAPI.FetchAccount(parent); status(err) != http.StatusNotFound {
		t.Errorf("a subaccount fetching its parent: %v; want 404", err)
	}

	// A secondary token authenticates too; the promotion ends the old one.
	sec, err := subAccounts.CreateSecondaryAuthToken(nil)
	if err != nil || *sec.SecondaryAuthToken != s.SecondaryAuthToken(sub) {
		t.Fatalf("CreateSecondaryAuthToken = %v, %v", sec, err)
	}
	withSecondary, secAccounts, _ := services(t, s, sub, *sec.SecondaryAuthToken, "")
	if _, err := withSecondary.FetchAccount(sub); err != nil {
		t.Errorf("the secondary token does not authenticate: %v", err)
	}
	if p, err := secAccounts.UpdateAuthTokenPromotion(nil); err != nil || *p.AuthToken != *sec.SecondaryAuthToken {
		t.Errorf("UpdateAuthTokenPromotion = %v, %v", p, err)
	}
	if _, err := subAPI.FetchAccount(sub); status(err) != http.StatusUnauthorized {
		t.Errorf("the old token after the promotion: %v; want 401", err)
	}

	// A closed account cannot authenticate; a wrong token neither.
	s.SetStatus(other, twiliotest.Closed)
	otherAPI, _, _ := services(t, s, other, otherToken, "")
	if _, err := otherAPI.FetchAccount(other); status(err) != http.StatusUnauthorized {
		t.Errorf("a closed account: %v; want 401", err)
	}
	wrong, _, _ := services(t, s, parent, otherToken, "")
	if _, err := wrong.ListAccount(nil); status(err) != http.StatusUnauthorized {
		t.Errorf("a wrong token: %v; want 401", err)
	}
}

func TestFakeChecksHost(t *testing.T) {
	t.Parallel()
	s := twiliotest.NewServer(t)
	parent, token := s.NewAccount("parent")
	s.AddMessagingService(parent, twiliotest.MessagingService{FriendlyName: "svc"})
	_, _, messaging := services(t, s, parent, token, "")
	if list, err := messaging.ListService(nil); err != nil || len(list) != 1 {
		t.Errorf("ListService = %v, %v; want the one service", list, err)
	}
	_, _, wrongHost := services(t, s, parent, token, twiliotest.HostAPI)
	if _, err := wrongHost.ListService(nil); status(err) != http.StatusNotFound {
		t.Errorf("messaging request with Host %s: %v; want 404", twiliotest.HostAPI, err)
	}
}

func TestFakePages(t *testing.T) {
	t.Parallel()
	s := twiliotest.NewServer(t)
	parent, token := s.NewAccount("parent")
	for range 4 {
		s.NewSubaccount(parent, "sub")
		s.AddPhoneNumber(parent, twiliotest.PhoneNumber{Number: "+15005550006"})
		s.AddMessagingService(parent, twiliotest.MessagingService{FriendlyName: "svc"})
	}
	api, _, messaging := services(t, s, parent, token, "")
	page, err := api.PageAccount((&apiv2010.ListAccountParams{}).SetPageSize(2), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if page.Page != 0 || page.PageSize != 2 || len(page.Accounts) != 2 || page.NextPageUri == nil || page.PreviousPageUri != nil {
		t.Errorf("first page of accounts: %+v", page)
	}
	if list, err := api.ListAccount((&apiv2010.ListAccountParams{}).SetPageSize(2)); err != nil || len(list) != 5 {
		t.Errorf("all pages of accounts: %d, %v; want 5", len(list), err)
	}
	seen := map[string]bool{}
	list, err := api.ListIncomingPhoneNumber((&apiv2010.ListIncomingPhoneNumberParams{}).SetPathAccountSid(parent).SetPageSize(3))
	for _, n := range list {
		seen[*n.Sid] = true
	}
	if err != nil || len(seen) != 4 {
		t.Errorf("all pages of phone numbers: %d distinct, %v; want 4", len(seen), err)
	}
	if svcs, err := messaging.ListService((&messagingv1.ListServiceParams{}).SetPageSize(3)); err != nil || len(svcs) != 4 {
		t.Errorf("all pages of Messaging Services: %d, %v; want 4", len(svcs), err)
	}
	if closed, err := api.ListAccount((&apiv2010.ListAccountParams{}).SetStatus(twiliotest.Closed)); err != nil || len(closed) != 0 {
		t.Errorf("closed accounts: %d, %v; want none", len(closed), err)
	}
}

func TestFakeFaults(t *testing.T) {
	t.Parallel()
	s := twiliotest.NewServer(t)
	parent, token := s.NewAccount("parent")
	s.Inject(twiliotest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "7", Times: 1})
	api, _, _ := services(t, s, parent, token, "")
	if _, err := api.FetchAccount(parent); status(err) != http.StatusTooManyRequests {
		t.Errorf("first request: %v; want 429", err)
	}
	if _, err := api.FetchAccount(parent); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Status != http.StatusTooManyRequests || reqs[1].Status != http.StatusOK || reqs[1].User != parent {
		t.Errorf("requests = %+v", reqs)
	}
}
