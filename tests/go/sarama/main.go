// Command sarama drives Shopify/sarama (Debian's golang-github-shopify-sarama-dev, 1.22)
// against a Kafka-compatible broker, for tests/python/test_go_clients.py.
//
//	sarama create  -bootstrap H:P -topic T -partitions N [-version V]
//	sarama produce -bootstrap H:P -topic T -input FILE [-partition P|-1] [-version V] [-compression none|gzip|snappy|lz4]
//	sarama consume -bootstrap H:P -topic T -partition P -expect N [-version V]
//	sarama group   -bootstrap H:P -topic T -group G -expect N [-version V] [-retention D]
//
// -version is sarama's Config.Version (what broker it assumes): it picks the request
// versions and the message format (< 0.10: magic 0, 0.10.x: magic 1, >= 0.11: v2 batches).
// FILE is a JSON list of {"key": hex|null, "value": hex|null, "ts": ms}. Machine-readable
// results are lines "RESULT {json}" on stdout; everything else is narration. Any failure
// exits 1 with a line "FAIL: ...".
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

type inputMsg struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
	Ts    int64   `json:"ts"`
}

type outMsg struct {
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	Ts        *int64  `json:"ts"`
}

var (
	bootstrap   = flag.String("bootstrap", "", "broker host:port")
	topic       = flag.String("topic", "", "topic")
	group       = flag.String("group", "", "consumer group")
	partitions  = flag.Int("partitions", 3, "partitions for create")
	partition   = flag.Int("partition", -1, "partition for produce (-1: key hash) or consume")
	input       = flag.String("input", "", "JSON file of messages to produce")
	expect      = flag.Int("expect", 0, "messages to consume")
	versionFlag = flag.String("version", "0.10.2.0", "sarama Config.Version (0.10.2.0, 2.1.0, ...)")
	compression = flag.String("compression", "none", "producer compression")
	retention   = flag.Duration("retention", 0, "Consumer.Offsets.Retention (0: OffsetCommit v1, else v2)")
	timeout     = flag.Duration("timeout", 30*time.Second, "overall deadline for the step")
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func result(v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("encode result: %v", err)
	}
	fmt.Printf("RESULT %s\n", b)
}

func hexOrNil(b []byte) *string {
	if b == nil {
		return nil
	}
	s := hex.EncodeToString(b)
	return &s
}

func unhex(s *string) []byte {
	if s == nil {
		return nil
	}
	b, err := hex.DecodeString(*s)
	if err != nil {
		fail("bad hex in input: %v", err)
	}
	return b
}

func config() *sarama.Config {
	v, err := sarama.ParseKafkaVersion(*versionFlag)
	if err != nil {
		fail("bad -version %q: %v", *versionFlag, err)
	}
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "klamm-go-sarama"
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 10 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	// sarama 1.22 opens the leader's connection asynchronously and fails a batch sent before
	// it is up with "kafka: broker not connected" (nothing reached the broker): retry such
	// batches. A duplicate from a retry would still fail the exact round-trip check.
	c.Producer.Retry.Max = 3
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Net.MaxOpenRequests = 1
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.Retention = *retention
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 1 * time.Second
	c.Consumer.Group.Rebalance.Retry.Max = 2
	c.Admin.Timeout = 10 * time.Second
	switch *compression {
	case "none":
	case "gzip":
		c.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		c.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		c.Producer.Compression = sarama.CompressionLZ4
	default:
		fail("unknown -compression %q", *compression)
	}
	if *partition >= 0 {
		c.Producer.Partitioner = sarama.NewManualPartitioner
	}
	return c
}

func doCreate() {
	admin, err := sarama.NewClusterAdmin([]string{*bootstrap}, config())
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	err = admin.CreateTopic(*topic, &sarama.TopicDetail{NumPartitions: int32(*partitions), ReplicationFactor: 1}, false)
	if err != nil {
		fail("CreateTopic %s (%d partitions): %v", *topic, *partitions, err)
	}
	fmt.Printf("created topic %s with %d partitions\n", *topic, *partitions)
	meta, err := admin.DescribeTopics([]string{*topic})
	if err != nil {
		fail("DescribeTopics: %v", err)
	}
	if len(meta) != 1 || meta[0].Err != sarama.ErrNoError || len(meta[0].Partitions) != *partitions {
		fail("DescribeTopics after create: %+v", meta)
	}
	result(map[string]interface{}{"topic": *topic, "partitions": len(meta[0].Partitions)})
}

func doProduce() {
	raw, err := ioutil.ReadFile(*input)
	if err != nil {
		fail("read -input: %v", err)
	}
	var in []inputMsg
	if err := json.Unmarshal(raw, &in); err != nil {
		fail("parse -input: %v", err)
	}
	p, err := sarama.NewSyncProducer([]string{*bootstrap}, config())
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(in))
	for i, m := range in {
		pm := &sarama.ProducerMessage{Topic: *topic, Timestamp: time.Unix(0, m.Ts*int64(time.Millisecond))}
		if k := unhex(m.Key); k != nil {
			pm.Key = sarama.ByteEncoder(k)
		}
		if v := unhex(m.Value); v != nil {
			pm.Value = sarama.ByteEncoder(v)
		}
		if *partition >= 0 {
			pm.Partition = int32(*partition)
		}
		msgs[i] = pm
	}
	// One call: sarama batches them (several messages per produce request).
	if err := p.SendMessages(msgs); err != nil {
		if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
			fail("SendMessages: %d of %d failed, first: %v", len(errs), len(msgs), errs[0].Err)
		}
		fail("SendMessages: %v", err)
	}
	for _, m := range msgs {
		result(map[string]interface{}{"partition": m.Partition, "offset": m.Offset})
	}
	fmt.Printf("produced %d messages to %s (version %s, compression %s)\n", len(msgs), *topic, *versionFlag, *compression)
}

func toOut(m *sarama.ConsumerMessage) outMsg {
	o := outMsg{Partition: m.Partition, Offset: m.Offset, Key: hexOrNil(m.Key), Value: hexOrNil(m.Value)}
	if !m.Timestamp.IsZero() && m.Timestamp.Unix() > 0 {
		ts := m.Timestamp.UnixNano() / int64(time.Millisecond)
		o.Ts = &ts
	}
	return o
}

func doConsume() {
	c, err := sarama.NewConsumer([]string{*bootstrap}, config())
	if err != nil {
		fail("NewConsumer: %v", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(*topic, int32(*partition), sarama.OffsetOldest)
	if err != nil {
		fail("ConsumePartition %s/%d: %v", *topic, *partition, err)
	}
	defer pc.Close()
	deadline := time.After(*timeout)
	n := 0
	for n < *expect {
		select {
		case m := <-pc.Messages():
			result(toOut(m))
			n++
		case e := <-pc.Errors():
			fail("consume %s/%d after %d messages: %v", *topic, *partition, n, e)
		case <-deadline:
			fail("timed out consuming %s/%d: %d of %d messages", *topic, *partition, n, *expect)
		}
	}
	fmt.Printf("consumed %d messages from %s/%d\n", n, *topic, *partition)
}

type handler struct {
	mu     sync.Mutex
	seen   map[string]bool
	last   map[int32]int64
	target int
	done   context.CancelFunc
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	fmt.Printf("group %s: member %s generation %d claims %v\n", *group, s.MemberID(), s.GenerationID(), s.Claims())
	return nil
}
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		id := fmt.Sprintf("%d/%d", m.Partition, m.Offset)
		if !h.seen[id] {
			h.seen[id] = true
			result(toOut(m))
		}
		if m.Offset+1 > h.last[m.Partition] {
			h.last[m.Partition] = m.Offset + 1
		}
		s.MarkMessage(m, "")
		if len(h.seen) >= h.target {
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

func doGroup() {
	cfg := config()
	client, err := sarama.NewClient([]string{*bootstrap}, cfg)
	if err != nil {
		fail("NewClient: %v", err)
	}
	defer client.Close()
	cg, err := sarama.NewConsumerGroupFromClient(*group, client)
	if err != nil {
		fail("NewConsumerGroup: %v", err)
	}
	var errs []string
	var errMu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	go func() {
		for e := range cg.Errors() {
			errMu.Lock()
			errs = append(errs, e.Error())
			n := len(errs)
			errMu.Unlock()
			fmt.Printf("group error: %v\n", e)
			if n == 3 {
				// sarama retries forever; three errors in a row is a failure, not a hiccup.
				cancel()
			}
		}
	}()
	h := &handler{seen: map[string]bool{}, last: map[int32]int64{}, target: *expect, done: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{*topic}, h); err != nil {
			fail("Consume: %v", err)
		}
	}
	cancel()
	// Close leaves the group after the last commit (the session's offset manager flushes).
	if err := cg.Close(); err != nil {
		fail("ConsumerGroup.Close: %v", err)
	}
	errMu.Lock()
	defer errMu.Unlock()
	if len(h.seen) < *expect {
		fail("consumed %d of %d messages (timeout %v or repeated errors); group errors: %v", len(h.seen), *expect, *timeout, errs)
	}
	fmt.Printf("group %s consumed %d messages; reading committed offsets back\n", *group, len(h.seen))

	// Read the committed offsets back (OffsetFetch) and compare with what was consumed.
	admin, err := sarama.NewClusterAdmin([]string{*bootstrap}, cfg)
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	parts, err := client.Partitions(*topic)
	if err != nil {
		fail("Partitions: %v", err)
	}
	resp, err := admin.ListConsumerGroupOffsets(*group, map[string][]int32{*topic: parts})
	if err != nil {
		fail("ListConsumerGroupOffsets: %v (group errors: %v)", err, errs)
	}
	committed := map[string]int64{}
	var bad []string
	for _, p := range parts {
		b := resp.GetBlock(*topic, p)
		if b == nil {
			fail("no committed offset block for %s/%d", *topic, p)
		}
		if b.Err != sarama.ErrNoError {
			bad = append(bad, fmt.Sprintf("p%d: error %v", p, b.Err))
		}
		want, consumed := h.last[p]
		if !consumed {
			want = -1
		}
		if b.Offset != want {
			bad = append(bad, fmt.Sprintf("p%d: committed %d, want %d", p, b.Offset, want))
		}
		committed[fmt.Sprint(p)] = b.Offset
	}
	result(map[string]interface{}{"committed": committed})
	if len(bad) > 0 {
		fail("committed offsets wrong: %s (group errors: %s)", strings.Join(bad, "; "), strings.Join(errs, "; "))
	}
	fmt.Printf("committed offsets verified: %v\n", committed)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: sarama create|produce|consume|group -bootstrap H:P -topic T ...")
	}
	cmd := os.Args[1]
	flag.CommandLine.Parse(os.Args[2:])
	if *bootstrap == "" || *topic == "" {
		fail("-bootstrap and -topic are required")
	}
	if os.Getenv("KLAMM_GO_DEBUG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
	fmt.Printf("sarama %s: version %s topic %s\n", cmd, *versionFlag, *topic)
	switch cmd {
	case "create":
		doCreate()
	case "produce":
		doProduce()
	case "consume":
		doConsume()
	case "group":
		doGroup()
	default:
		fail("unknown command %q", cmd)
	}
}
