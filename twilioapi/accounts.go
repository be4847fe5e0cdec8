package twilioapi

import (
	"context"
	"slices"
	"strings"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// AccountLister lists twilioguard's accounts, one page at a time.
type AccountLister interface {
	ListAccounts(context.Context, *twilioguardv1.ListAccountsRequest) (*twilioguardv1.ListAccountsResponse, error)
}

// AccountService is the part of twilioguard's admin API this package
// changes accounts through. Both the generated
// twilioguardv1connect.AccountServiceClient (remote) and the in-process
// *server.Server satisfy it.
type AccountService interface {
	AccountLister
	GetAccount(context.Context, *twilioguardv1.GetAccountRequest) (*twilioguardv1.GetAccountResponse, error)
	PutAccount(context.Context, *twilioguardv1.PutAccountRequest) (*twilioguardv1.PutAccountResponse, error)
	DeleteAccount(context.Context, *twilioguardv1.DeleteAccountRequest) (*twilioguardv1.DeleteAccountResponse, error)
	RotateAuthToken(context.Context, *twilioguardv1.RotateAuthTokenRequest) (*twilioguardv1.RotateAuthTokenResponse, error)
}

// Verifier verifies one webhook; the generated
// twilioguardv1connect.VerifierServiceClient and *server.Server satisfy it.
type Verifier interface {
	VerifyWebhook(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error)
}

// readAccounts returns the accounts Twilio lists for tw's credentials,
// ordered by SID, and those twilioguard holds, by SID.
func readAccounts(ctx context.Context, tw *Client, svc AccountLister) ([]Account, map[string]*twilioguardv1.Account, error) {
	listed, err := tw.accounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	held, err := heldAccounts(ctx, svc)
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(listed, func(a, b Account) int { return strings.Compare(a.SID, b.SID) })
	return listed, held, nil
}

// heldAccounts returns every account twilioguard holds, by SID.
func heldAccounts(ctx context.Context, svc AccountLister) (map[string]*twilioguardv1.Account, error) {
	held := map[string]*twilioguardv1.Account{}
	token := ""
	for {
		page, err := svc.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, serviceError("list twilioguard's accounts", err)
		}
		for _, a := range page.Accounts {
			held[a.Sid] = a
		}
		if token = page.NextPageToken; token == "" {
			return held, nil
		}
	}
}
