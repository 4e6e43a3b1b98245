// Command etcd runs a single-member etcd for the test control plane, embedded
// from go.etcd.io/etcd/server/v3, listening on loopback only.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dir := flag.String("data-dir", "", "where etcd keeps its data")
	client := flag.String("listen-client-url", "http://127.0.0.1:2379", "the client URL (loopback)")
	peer := flag.String("listen-peer-url", "http://127.0.0.1:2380", "the peer URL (loopback)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("--data-dir is required")
	}
	cu, err := url.Parse(*client)
	if err != nil {
		log.Fatalf("--listen-client-url: %v", err)
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		log.Fatalf("--listen-peer-url: %v", err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "warn"
	// No fsync, as envtest runs etcd: a test cluster's data need not survive a
	// power cut, and each write skips a disk flush.
	cfg.UnsafeNoFsync = true
	// The API server compacts etcd itself (--etcd-compaction-interval); etcd's
	// own auto-compaction stays off so the tests decide when 410 Gone happens.
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("start etcd: %v", err)
	}
	defer e.Close()
	<-e.Server.ReadyNotify()
	log.Printf("etcd ready on %s", cu)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-e.Err():
		log.Fatalf("etcd: %v", err)
	}
}
