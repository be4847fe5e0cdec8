package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twilioguard/twilioguard/proxy"
	"github.com/twilioguard/twilioguard/webhookreq"
)

// Defaults of the proxy's listeners.
const (
	defaultProxyAddr   = "localhost:8090"
	defaultMetricsAddr = "localhost:8091"
)

// runProxy runs the inline verifying proxy until ctx ends, then drains
// in-flight requests.
func runProxy(ctx context.Context, e env, args []string) error {
	var (
		svc                 remote
		cfg                 proxy.Config
		addr, metricsAddr   string
		accounts, trusted   string
		proxyHeaders        string
		mode, duplicates    string
		logFormat, logLevel string
		shutdownTimeout     time.Duration
	)
	fs := newFlagSet(e, "proxy", "proxy --upstream URL [--server URL] [flags]", true)
	svc.registerService(fs)
	fs.StringVar(&addr, "addr", defaultProxyAddr, "listen address for webhooks (HTTP/1.1 and h2c; TLS ends at the gateway in front)")
	fs.StringVar(&cfg.Upstream, "upstream", "", "the application: http://host:port or https://host:port (required)")
	fs.BoolVar(&cfg.UpstreamH2C, "upstream-h2c", false, "speak HTTP/2 without TLS (h2c) to an http:// upstream instead of HTTP/1.1")
	fs.StringVar(&accounts, "accounts", "", "comma-separated account SIDs or aliases the application accepts (default: any account the service holds)")
	fs.StringVar(&cfg.PublicBaseURL, "public-base-url", "", "scheme://host[:port][/prefix] Twilio sends the webhooks to; no forwarding header is read (wins over --trusted-proxies)")
	fs.StringVar(&trusted, "trusted-proxies", "", "comma-separated CIDRs or addresses of the proxies whose Forwarded and X-Forwarded-* headers are believed")
	fs.StringVar(&proxyHeaders, "proxy-headers", "", "comma-separated subset of Forwarded, X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port, X-Original-Host read from trusted proxies (default: all)")
	fs.StringVar(&mode, "mode", webhookreq.ModeEnforce, "enforce, or shadow: forward every request, marking the ones that would be refused with X-Twilioguard-Verified: false")
	fs.StringVar(&duplicates, "duplicates", webhookreq.DuplicatesAllow, "allow (forward, with X-Twilioguard-Duplicate: true) or reject (409) webhooks the service saw before")
	fs.StringVar(&cfg.Route, "route", "", "label for the service's logs and metrics")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", webhookreq.DefaultMaxBodyBytes, "largest webhook body read for verification (413 above)")
	fs.StringVar(&metricsAddr, "metrics-addr", defaultMetricsAddr, "listen address for GET /healthz, /readyz and /metrics, apart from the webhooks (empty: none)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Shadow, err = webhookreq.ParseMode(mode); err != nil {
		return fmt.Errorf("proxy: --mode %w", err)
	}
	if cfg.RejectDuplicates, err = webhookreq.ParseDuplicates(duplicates); err != nil {
		return fmt.Errorf("proxy: --duplicates %w", err)
	}
	cfg.Accounts, cfg.TrustedProxies, cfg.ProxyHeaders = splitList(accounts), splitList(trusted), splitList(proxyHeaders)
	log, err := newLogger(e.stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg

	c, err := svc.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := proxy.New(c, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	if cfg.PublicBaseURL != "" && len(cfg.TrustedProxies) > 0 {
		log.Warn("--trusted-proxies has no effect: with --public-base-url no forwarding header is read")
	}

	var draining atomic.Bool
	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ops.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	ops.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	servers := []*namedServer{{name: "webhooks", addr: addr, srv: newProxyServer(p, log)}}
	if metricsAddr != "" {
		servers = append(servers, &namedServer{name: "metrics", addr: metricsAddr, srv: newProxyServer(ops, log)})
	}
	for _, s := range servers {
		if s.ln, err = net.Listen("tcp", s.addr); err != nil {
			for _, o := range servers {
				if o.ln != nil {
					o.ln.Close()
				}
			}
			return fmt.Errorf("proxy: listen for %s: %w", s.name, err)
		}
	}

	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("proxy: serve %s on %s: %w", s.name, s.ln.Addr(), err)
			}
		})
	}
	attrs := []any{"addr", servers[0].ln.Addr().String(), "upstream", cfg.Upstream, "server", svc.server,
		"mode", mode, "duplicates", duplicates, "version", versionString()}
	if metricsAddr != "" {
		attrs = append(attrs, "metrics_addr", servers[1].ln.Addr().String())
	}
	log.Info("twilioguard proxy serving", attrs...)

	var runErr error
	select {
	case runErr = <-errc:
	case <-ctx.Done():
	}
	draining.Store(true)
	log.Info("shutting down; draining in-flight requests", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// The webhooks first: the metrics listener keeps answering /readyz with
	// 503 while they drain.
	for _, s := range servers {
		if err := s.srv.Shutdown(sctx); err != nil && runErr == nil {
			runErr = fmt.Errorf("proxy: shutdown %s: %w", s.name, err)
		}
	}
	wg.Wait()
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// namedServer is one listener of the proxy process.
type namedServer struct {
	name, addr string
	srv        *http.Server
	ln         net.Listener
}

// newProxyServer returns an HTTP/1.1 and h2c server for h with the same
// limits as the service's port. The write timeout leaves the upstream the
// 15 s Twilio waits for an answer, and more.
func newProxyServer(h http.Handler, log *slog.Logger) *http.Server {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.Protocols = new(http.Protocols)
	s.Protocols.SetHTTP1(true)
	s.Protocols.SetUnencryptedHTTP2(true)
	return s
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
