package extauthz_test

import (
	"context"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/twilioguard/twilioguard/extauthz"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// allowAll is the transport floor: a grpc-go Check server that does no work.
type allowAll struct{}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

// fixedAnswer is a grpc-go Check server that does no work but answers with
// a given response: the transport floor for an answer the size of ours.
type fixedAnswer struct{ resp *authv3.CheckResponse }

func (f fixedAnswer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return f.resp, nil
}

// benchCheck is a CheckRequest the size of a real one: a Twilio SMS webhook
// with the headers Envoy sends.
func benchCheck() *authv3.CheckRequest {
	body := "ToCountry=US&ToState=CA&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0" +
		"&ToCity=SAN+FRANCISCO&FromZip=94105&SmsSid=SM0123456789abcdef0123456789abcdef&FromState=CA" +
		"&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Hello+from+the+benchmark&FromCountry=US" +
		"&To=%2B15005550006&ToZip=94105&NumSegments=1&MessageSid=SM0123456789abcdef0123456789abcdef" +
		"&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B15005550001&ApiVersion=2010-04-01"
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{},
		Destination: &authv3.AttributeContext_Peer{},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "6912375219436427394", Method: "POST", Path: "/twilio/sms", Host: "hooks.example.com",
			Scheme: "http", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":authority": "hooks.example.com", ":method": "POST", ":path": "/twilio/sms", ":scheme": "http",
				"content-type": "application/x-www-form-urlencoded", "content-length": itoa(len(body)),
				"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "user-agent": "TwilioProxy/1.1",
				"accept": "*/*", "cache-control": "max-age=259200", "i-twilio-idempotency-token": "0b5ac3ee-0b5a-4b1c-9c1d-0123456789ab",
				"x-forwarded-proto": "http", "x-forwarded-for": "127.0.0.1", "x-request-id": "2b0d9a6e-0b5a-4b1c-9c1d-0123456789ab",
				"x-envoy-expected-rq-timeout-ms": "15000", "x-envoy-auth-partial-body": "false",
			},
			RawBody: []byte(body),
		}},
		ContextExtensions: map[string]string{
			"public_base_url": "https://hooks.example.com", "twilio_accounts": "AC0123456789abcdef0123456789abcdef", "route": "sms",
		},
	}}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// BenchmarkCheck measures Check throughput with a grpc-go client (one
// connection, as Envoy's worker uses) at concurrency 16, against the
// transport floor (a grpc-go server answering a bare OK), against a grpc-go
// server answering our response without doing any work, and against both
// ways Server is served. The verifier is a fake that answers valid at once,
// so the numbers are the cost of transport plus translation. Compare ns/op
// (and cpu-ns/op) of the sub-benchmarks, ideally each in its own process
// and interleaved: -bench 'BenchmarkCheck$/grpc-go$'.
func BenchmarkCheck(b *testing.B) {
	req := benchCheck()
	valid := &fakeVerifier{resp: &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC0123456789abcdef0123456789abcdef"}}
	native := func(b *testing.B, srv authv3.AuthorizationServer) authv3.AuthorizationClient {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		g := grpc.NewServer()
		authv3.RegisterAuthorizationServer(g, srv)
		go func() { _ = g.Serve(lis) }()
		b.Cleanup(g.Stop)
		return dial(b, lis.Addr().String())
	}
	starts := map[string]func(b *testing.B) authv3.AuthorizationClient{
		"floor-grpc-go-allow-all": func(b *testing.B) authv3.AuthorizationClient {
			return native(b, allowAll{})
		},
		"floor-grpc-go-same-answer": func(b *testing.B) authv3.AuthorizationClient {
			resp, err := mustServer(extauthz.NewServer(nopVerifier{valid.resp})).Check(b.Context(), req)
			if err != nil {
				b.Fatal(err)
			}
			return native(b, fixedAnswer{resp})
		},
		"connect-h2c": func(b *testing.B) authv3.AuthorizationClient {
			return transports["connect-h2c"](b, mustServer(extauthz.NewServer(nopVerifier{valid.resp})))
		},
		"grpc-go": func(b *testing.B) authv3.AuthorizationClient {
			return transports["grpc-go"](b, mustServer(extauthz.NewServer(nopVerifier{valid.resp})))
		},
	}
	for _, name := range []string{"floor-grpc-go-allow-all", "floor-grpc-go-same-answer", "connect-h2c", "grpc-go"} {
		b.Run(name, func(b *testing.B) {
			client := starts[name](b)
			ctx := b.Context()
			if _, err := client.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			cpu := cpuTime(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Check(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkCheckInProcess measures Check itself (translation, metrics,
// response), without a transport.
func BenchmarkCheckInProcess(b *testing.B) {
	s := mustServer(extauthz.NewServer(nopVerifier{&twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC0123456789abcdef0123456789abcdef"}}))
	req := benchCheck()
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		if _, err := s.Check(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// nopVerifier answers every request with the same response without
// recording it.
type nopVerifier struct {
	resp *twilioguardv1.VerifyWebhookResponse
}

func (n nopVerifier) VerifyWebhook(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	return n.resp, nil
}

// cpuTime returns the user plus system CPU time this process has used. Per
// operation it is a steadier measure than wall time on a shared machine:
// client and server run in this process, so the transports differ only by
// the server's share.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
