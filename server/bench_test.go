package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/server"
)

// benchGoroutines is the number of concurrent callers in BenchmarkRPC.
const benchGoroutines = 16

// BenchmarkRPC measures VerifyWebhook over a real h2c listener against a
// trivial handler with the same request and response types on the same
// server, for the Connect and gRPC protocols, with 16 concurrent callers
// sending a 21-field SMS webhook. It reports throughput (req/s) and the
// 99th percentile latency (p99-µs), so the cost of verification itself is
// the difference between the "verify" and "trivial" rows. It also reports
// the process CPU time per call (client and server together, cpu-µs/op),
// which other load on the machine disturbs less than wall-clock numbers.
func BenchmarkRPC(b *testing.B) {
	clock := &testClock{t: t0}
	srv, err := server.New(server.Config{
		Store:      newFakeStore(clock.Now, defaultAccounts()...),
		AdminToken: adminToken,
		Now:        clock.Now,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Load(b.Context()); err != nil {
		b.Fatal(err)
	}

	const trivialPrefix = "/trivial"
	fixed := &twilioguardv1.VerifyWebhookResponse{
		Valid: true, AccountSid: sid1, Credential: "auth_token", MatchedUrl: hookURL,
		Algorithm: twilioguardv1.Algorithm_HMAC_SHA1,
	}
	mux := http.NewServeMux()
	srv.Routes(mux)
	mux.Handle(trivialPrefix+twilioguardv1connect.VerifierServiceVerifyWebhookProcedure,
		connect.NewUnaryHandlerSimple(twilioguardv1connect.VerifierServiceVerifyWebhookProcedure,
			func(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
				return fixed, nil
			},
			// As server.Routes does: small responses are not compressed.
			connect.WithCompressMinBytes(1024)))
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	defer ts.Close()
	transport := &http.Transport{Protocols: new(http.Protocols)}
	transport.Protocols.SetUnencryptedHTTP2(true)
	defer transport.CloseIdleConnections()
	httpClient := &http.Client{Transport: transport}

	req := signedParams(token1, hookURL, smsParams(sid1))
	req.Route = "sms"
	parallelism := (benchGoroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)

	for _, p := range protocols[:2] { // Connect and gRPC
		for _, target := range []struct{ name, prefix string }{{"trivial", trivialPrefix}, {"verify", ""}} {
			b.Run(p.name+"/"+target.name, func(b *testing.B) {
				client := twilioguardv1connect.NewVerifierServiceClient(httpClient, ts.URL+target.prefix, p.opts...)
				if got, err := client.VerifyWebhook(b.Context(), req); err != nil || !got.Valid {
					b.Fatalf("VerifyWebhook = %v, %v; want valid", got, err)
				}
				var mu sync.Mutex
				var latencies []time.Duration
				b.SetParallelism(parallelism)
				b.ResetTimer()
				start, startCPU := time.Now(), processCPU()
				b.RunParallel(func(pb *testing.PB) {
					local := make([]time.Duration, 0, 4096)
					for pb.Next() {
						t := time.Now()
						got, err := client.VerifyWebhook(b.Context(), req)
						local = append(local, time.Since(t))
						if err != nil || !got.Valid {
							b.Errorf("VerifyWebhook = %v, %v; want valid", got, err)
							return
						}
					}
					mu.Lock()
					latencies = append(latencies, local...)
					mu.Unlock()
				})
				elapsed, cpu := time.Since(start), processCPU()-startCPU
				b.StopTimer()
				if len(latencies) == 0 {
					return
				}
				slices.Sort(latencies)
				p99 := latencies[len(latencies)*99/100]
				b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-µs")
				if startCPU > 0 {
					// Client and server share the process: this is the CPU
					// cost of one call end to end, robust to other load.
					b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(latencies)), "cpu-µs/op")
				}
			})
		}
	}
}
