package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/twilioguard/twilioguard/forwardauth"
	"github.com/twilioguard/twilioguard/internal/connectguard"
	"github.com/twilioguard/twilioguard/server"
)

// Limits of both listeners.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// maxConcurrentStreams bounds the HTTP/2 streams of one connection.
	maxConcurrentStreams = 250
)

// services are the gRPC services of the main port, announced by health and
// reflection.
func services() []string {
	return append(append([]string{}, server.Services...),
		authv3.Authorization_ServiceDesc.ServiceName,
		grpchealth.HealthV1ServiceName,
		grpcreflect.ReflectV1ServiceName,
		grpcreflect.ReflectV1AlphaServiceName,
	)
}

// routes builds the main port's handler.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	a.srv.Routes(mux)
	path, check := a.ext.Handler()
	mux.Handle(path, connectguard.Guard(check))
	// HTTP forward-auth, any method: /forward-auth (Traefik, APISIX) and
	// /forward-auth/<original path> (Envoy's path_prefix).
	mux.Handle(forwardauth.Path, a.fwd)
	mux.Handle(forwardauth.Path+"/", a.fwd)

	names := services()
	mux.Handle(grpchealth.NewHandler(healthChecker{a: a, services: names}))
	reflector := grpcreflect.NewStaticReflector(names...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		code, text := readiness(a.srv.Status())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(text))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	return mux
}

// readiness renders the server's status for GET /readyz: 503 before the
// first load; 200 "degraded" while the store is unreachable (verification
// goes on from the cache); 200 "ready" otherwise. It counts, never names,
// accounts.
func readiness(st server.Status) (int, string) {
	switch {
	case !st.Loaded:
		why := st.LoadProblem
		if why == "" {
			why = "store unreachable"
		}
		return http.StatusServiceUnavailable, fmt.Sprintf("not ready: accounts not loaded (%s)\n", why)
	case !st.StoreUp:
		return http.StatusOK, fmt.Sprintf("degraded: store unreachable; verifying from cache (%d accounts, last sync %s)\n",
			st.Accounts, st.Synced.UTC().Format(time.RFC3339))
	case st.Unreadable > 0:
		return http.StatusOK, fmt.Sprintf("degraded: %d of %d accounts have secrets that cannot be read; "+
			"their webhooks cannot be verified until they are put again (see GetAccount's unreadableSecrets)\n",
			st.Unreadable, st.Accounts)
	}
	return http.StatusOK, fmt.Sprintf("ready: %d accounts\n", st.Accounts)
}

// healthChecker reports SERVING once the accounts are loaded.
type healthChecker struct {
	a        *App
	services []string
}

func (h healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	known := req.Service == ""
	for _, s := range h.services {
		known = known || s == req.Service
	}
	if !known {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if !h.a.srv.Status().Loaded {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// listen binds the main port and, when configured, the native ext_authz
// listener, both with the same limits.
func (a *App) listen() error {
	a.http = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStreams},
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.http.Protocols = new(http.Protocols)
	a.http.Protocols.SetHTTP1(true)
	if a.cfg.TLSCertFile != "" {
		a.http.Protocols.SetHTTP2(true)
	} else {
		a.http.Protocols.SetUnencryptedHTTP2(true)
	}
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	a.ln = ln
	if a.cfg.ExtauthzAddr == "" {
		return nil
	}
	a.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(2*max(a.cfg.Server.MaxBodyBytes, server.DefaultMaxBodyBytes)+1<<20),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.ConnectionTimeout(readHeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Long-lived workers serve the streams: a new goroutine per Check
		// would grow its stack again on every call.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	)
	a.ext.RegisterGRPC(a.grpc)
	healthpb.RegisterHealthServer(a.grpc, grpcHealth{a: a})
	extLn, err := net.Listen("tcp", a.cfg.ExtauthzAddr)
	if err != nil {
		return fmt.Errorf("--extauthz-addr: %w", err)
	}
	a.extLn = extLn
	return nil
}

// grpcHealth is grpc.health.v1.Health on the native ext_authz listener, so
// Envoy can health-check the port it sends Check to.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	a *App
}

func (h grpcHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() != "" && req.GetService() != authv3.Authorization_ServiceDesc.ServiceName {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	if !h.a.srv.Status().Loaded {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
