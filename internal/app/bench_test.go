package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/twilioguard/twilioguard/client"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/internal/app"
	"github.com/twilioguard/twilioguard/signature"
)

// benchCallers is the number of concurrent calls, as Envoy's workers make.
const benchCallers = 16

// BenchmarkDefaultConfig measures the service as users run it — default
// flags and log level (info, written to a file as a container's stderr
// would be), SQLite, one account — side by side with trivial servers on the
// same transports, in interleaved rounds of one process:
//
//   - Envoy's Check on the native listener (--extauthz-addr) and on the main
//     port, against a grpc-go Check server that allows everything;
//   - VerifyWebhook over Connect against a Connect handler that returns a
//     fixed verdict.
//
// Every request is a distinct signed 21-field SMS webhook (its MessageSid
// differs), so every answer is a verification and, as in real traffic, none
// is a duplicate. It reports each rate and its ratio to its floor
// (x-floor metrics), and the log bytes written per call, which must be 0:
// verified webhooks are logged only at debug. Run with -benchtime 1x: one
// iteration is the whole set of rounds.
func BenchmarkDefaultConfig(b *testing.B) {
	logFile, err := os.Create(filepath.Join(b.TempDir(), "stderr"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	a, err := app.Open(b.Context(), app.Config{
		Addr: "127.0.0.1:0", ExtauthzAddr: "127.0.0.1:0", DataDir: b.TempDir(), AdminToken: adminToken,
		Logger: slog.New(slog.NewTextHandler(logFile, nil)), // the default level: info
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
		_ = a.Close()
	}()
	base := "http://" + a.Addr()
	c, err := client.New(base, client.WithAdminToken(adminToken))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	waitUp(b, c)
	if _, err := c.Accounts.PutAccount(b.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: testSID, AuthToken: testToken}}); err != nil {
		b.Fatal(err)
	}

	checks, verifies := benchRequests(100_000)
	var next atomic.Int64
	pick := func() int { return int(next.Add(1) % int64(len(checks))) }
	floorAddr := serveAllowAll(b)
	trivialURL := serveTrivialVerifier(b)
	native, main, floor := dialGRPC(b, a.ExtauthzAddr()), dialGRPC(b, a.Addr()), dialGRPC(b, floorAddr)
	rpc, err := client.New(base)
	if err != nil {
		b.Fatal(err)
	}
	trivial, err := client.New(trivialURL)
	if err != nil {
		b.Fatal(err)
	}

	checkCall := func(cl authv3.AuthorizationClient) func(context.Context) error {
		return func(ctx context.Context) error {
			resp, err := cl.Check(ctx, checks[pick()])
			if err == nil && resp.GetOkResponse() == nil {
				err = fmt.Errorf("denied: %v", resp)
			}
			return err
		}
	}
	verifyCall := func(cl *client.Client) func(context.Context) error {
		return func(ctx context.Context) error {
			resp, err := cl.VerifyWebhook(ctx, verifies[pick()])
			if err == nil && !resp.GetValid() {
				err = fmt.Errorf("not valid: %v", resp)
			}
			return err
		}
	}
	variants := []struct {
		name string
		call func(context.Context) error
	}{
		{"check-floor-grpc-go", checkCall(floor)},
		{"check-native-listener", checkCall(native)},
		{"check-main-port", checkCall(main)},
		{"verify-floor-connect", verifyCall(trivial)},
		{"verify-connect", verifyCall(rpc)},
	}
	for _, v := range variants { // warm up connections and caches
		if err := v.call(b.Context()); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
	}
	logBefore := fileSize(b, logFile)
	const rounds, roundTime = 8, 500 * time.Millisecond
	calls := make([]float64, len(variants))
	secs := make([]float64, len(variants))
	b.ResetTimer()
	for range b.N {
		for range rounds {
			for i, v := range variants {
				runtime.GC() // no variant pays for another's garbage
				n, d := load(b, v.call, roundTime)
				calls[i] += float64(n)
				secs[i] += d.Seconds()
			}
		}
	}
	b.StopTimer()
	rate := func(i int) float64 { return calls[i] / secs[i] }
	for i, v := range variants {
		b.ReportMetric(rate(i), v.name+"/s")
	}
	b.ReportMetric(rate(1)/rate(0), "native-x-floor")
	b.ReportMetric(rate(2)/rate(0), "main-port-x-floor")
	b.ReportMetric(rate(4)/rate(3), "verify-x-floor")
	total := 0.0
	for i := 1; i < len(calls); i++ {
		if i != 3 {
			total += calls[i]
		}
	}
	b.ReportMetric(float64(fileSize(b, logFile)-logBefore)/total, "log-bytes/call")
}

// load runs call from benchCallers goroutines for d and returns how many
// calls completed and how long it took.
func load(b *testing.B, call func(context.Context) error, d time.Duration) (int64, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	ctx := b.Context()
	start := time.Now()
	deadline := start.Add(d)
	for range benchCallers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := call(ctx); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load(), time.Since(start)
}

// benchRequests returns n distinct signed SMS webhooks, as Envoy's
// CheckRequests and as VerifyWebhookRequests.
func benchRequests(n int) ([]*authv3.CheckRequest, []*twilioguardv1.VerifyWebhookRequest) {
	const hook = "https://hooks.example.com/twilio/sms"
	checks := make([]*authv3.CheckRequest, n)
	verifies := make([]*twilioguardv1.VerifyWebhookRequest, n)
	for i := range n {
		sid := fmt.Sprintf("SM%032x", i)
		body := "ToCountry=US&ToState=CA&SmsMessageSid=" + sid + "&NumMedia=0" +
			"&ToCity=SAN+FRANCISCO&FromZip=94105&SmsSid=" + sid + "&FromState=CA" +
			"&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Hello+from+the+benchmark&FromCountry=US" +
			"&To=%2B15005550006&ToZip=94105&NumSegments=1&MessageSid=" + sid +
			"&AccountSid=" + testSID + "&From=%2B15005550001&ApiVersion=2010-04-01&MessagingServiceSid=&OptOutType="
		params, err := signature.ParseForm([]byte(body))
		if err != nil {
			panic(err)
		}
		sig := signature.Sign(testToken, hook, params)
		checks[i] = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: "6912375219436427394", Method: "POST", Path: "/twilio/sms", Host: "hooks.example.com",
				Scheme: "http", Protocol: "HTTP/1.1",
				Headers: map[string]string{
					":authority": "hooks.example.com", ":method": "POST", ":path": "/twilio/sms", ":scheme": "http",
					"content-type": "application/x-www-form-urlencoded", "content-length": fmt.Sprint(len(body)),
					"x-twilio-signature": sig, "user-agent": "TwilioProxy/1.1", "accept": "*/*",
					"x-forwarded-proto": "http", "x-request-id": "2b0d9a6e-0b5a-4b1c-9c1d-0123456789ab",
				},
				RawBody: []byte(body),
			}},
			ContextExtensions: map[string]string{"public_base_url": "https://hooks.example.com", "route": "sms"},
		}}
		verifies[i] = &twilioguardv1.VerifyWebhookRequest{Url: hook, Body: []byte(body),
			ContentType: "application/x-www-form-urlencoded", Signature: sig, Route: "sms"}
	}
	return checks, verifies
}

// allowAll is a grpc-go Check server that does no work: the floor.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

func serveAllowAll(b *testing.B) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, allowAll{})
	go func() { _ = g.Serve(lis) }()
	b.Cleanup(g.Stop)
	return lis.Addr().String()
}

// serveTrivialVerifier serves a VerifyWebhook that returns a fixed verdict,
// over the same transport settings as the main port (h2c, small answers not
// compressed).
func serveTrivialVerifier(b *testing.B) string {
	fixed := &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: testSID, Credential: "auth_token",
		MatchedUrl: "https://hooks.example.com/twilio/sms", Algorithm: twilioguardv1.Algorithm_HMAC_SHA1}
	mux := http.NewServeMux()
	mux.Handle(twilioguardv1connect.VerifierServiceVerifyWebhookProcedure, connect.NewUnaryHandlerSimple(
		twilioguardv1connect.VerifierServiceVerifyWebhookProcedure,
		func(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
			return fixed, nil
		}, connect.WithCompressMinBytes(1024)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String()
}

func dialGRPC(b *testing.B, addr string) authv3.AuthorizationClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func waitUp(b *testing.B, c *client.Client) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Accounts.ListAccounts(b.Context(), &twilioguardv1.ListAccountsRequest{}); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("the app did not come up")
}

func fileSize(b *testing.B, f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
