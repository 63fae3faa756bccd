// Command kafkago drives segmentio/kafka-go (Debian's golang-github-segmentio-kafka-go-dev,
// 0.2.1) against a Kafka-compatible broker, for tests/python/test_go_clients.py.
//
//	kafkago create  -bootstrap H:P -topic T -partitions N
//	kafkago produce -bootstrap H:P -topic T -input FILE [-partition P|-1] [-compression none|gzip|snappy]
//	kafkago consume -bootstrap H:P -topic T -partition P -expect N
//	kafkago group   -bootstrap H:P -topic T -group G -expect N
//
// kafka-go 0.2.1 has fixed request versions: CreateTopics v0, Produce v2 (message format
// magic 1), Fetch v2, ListOffsets v1, Metadata v1, FindCoordinator v0, JoinGroup v1,
// SyncGroup v0, Heartbeat v0, LeaveGroup v0, OffsetCommit v2, OffsetFetch v1.
// FILE is a JSON list of {"key": hex|null, "value": hex|null, "ts": ms}. Machine-readable
// results are lines "RESULT {json}" on stdout. Any failure exits 1 with "FAIL: ...".
// kafka-go reads both a null and an empty key or value as nil (printed as null).
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/snappy"
)

type inputMsg struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
	Ts    int64   `json:"ts"`
}

type outMsg struct {
	Partition int     `json:"partition"`
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
	partition   = flag.Int("partition", -1, "partition for produce (-1: Writer with key hash) or consume")
	input       = flag.String("input", "", "JSON file of messages to produce")
	expect      = flag.Int("expect", 0, "messages to consume")
	compression = flag.String("compression", "none", "producer compression")
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

func toOut(m kafka.Message) outMsg {
	o := outMsg{Partition: m.Partition, Offset: m.Offset, Key: hexOrNil(m.Key), Value: hexOrNil(m.Value)}
	if !m.Time.IsZero() && m.Time.Unix() > 0 {
		ts := m.Time.UnixNano() / int64(time.Millisecond)
		o.Ts = &ts
	}
	return o
}

func codec() kafka.CompressionCodec {
	switch *compression {
	case "none":
		return nil
	case "gzip":
		return gzip.NewCompressionCodec()
	case "snappy":
		return snappy.NewCompressionCodec()
	}
	fail("unknown -compression %q", *compression)
	return nil
}

func dialer() *kafka.Dialer {
	return &kafka.Dialer{ClientID: "klamm-go-kafka-go", Timeout: 10 * time.Second}
}

func doCreate() {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := dialer().DialContext(ctx, "tcp", *bootstrap)
	if err != nil {
		fail("dial %s: %v", *bootstrap, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(*timeout))
	err = conn.CreateTopics(kafka.TopicConfig{Topic: *topic, NumPartitions: *partitions, ReplicationFactor: 1})
	if err != nil {
		fail("CreateTopics %s (%d partitions): %v", *topic, *partitions, err)
	}
	fmt.Printf("created topic %s with %d partitions\n", *topic, *partitions)
	// Metadata v1 until the topic shows all its partitions.
	deadline := time.Now().Add(10 * time.Second)
	for {
		parts, err := conn.ReadPartitions(*topic)
		if err == nil && len(parts) == *partitions {
			result(map[string]interface{}{"topic": *topic, "partitions": len(parts)})
			return
		}
		if time.Now().After(deadline) {
			fail("ReadPartitions %s after create: %d partitions, err %v", *topic, len(parts), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readInput() []kafka.Message {
	raw, err := ioutil.ReadFile(*input)
	if err != nil {
		fail("read -input: %v", err)
	}
	var in []inputMsg
	if err := json.Unmarshal(raw, &in); err != nil {
		fail("parse -input: %v", err)
	}
	msgs := make([]kafka.Message, len(in))
	for i, m := range in {
		msgs[i] = kafka.Message{Key: unhex(m.Key), Value: unhex(m.Value), Time: time.Unix(0, m.Ts*int64(time.Millisecond))}
	}
	return msgs
}

func doProduce() {
	msgs := readInput()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *partition >= 0 {
		// One produce request (v2, magic 1) to the partition's leader: offsets follow the input order.
		conn, err := dialer().DialLeader(ctx, "tcp", *bootstrap, *topic, *partition)
		if err != nil {
			fail("DialLeader %s/%d: %v", *topic, *partition, err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(*timeout))
		if _, err := conn.WriteCompressedMessages(codec(), msgs...); err != nil {
			fail("WriteMessages to %s/%d: %v", *topic, *partition, err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			fail("ReadLastOffset %s/%d: %v", *topic, *partition, err)
		}
		result(map[string]interface{}{"partition": *partition, "end_offset": last})
		fmt.Printf("produced %d messages to %s/%d (compression %s); end offset %d\n", len(msgs), *topic, *partition, *compression, last)
		return
	}
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:          []string{*bootstrap},
		Topic:            *topic,
		Dialer:           dialer(),
		Balancer:         &kafka.Hash{},
		MaxAttempts:      1,
		BatchSize:        len(msgs),
		BatchTimeout:     50 * time.Millisecond,
		RequiredAcks:     -1,
		CompressionCodec: codec(),
	})
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		w.Close()
		fail("Writer.WriteMessages (%d messages): %v", len(msgs), err)
	}
	if err := w.Close(); err != nil {
		fail("Writer.Close: %v", err)
	}
	result(map[string]interface{}{"produced": len(msgs)})
	fmt.Printf("produced %d messages to %s with the key-hash balancer\n", len(msgs), *topic)
}

func doConsume() {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := dialer().DialLeader(ctx, "tcp", *bootstrap, *topic, *partition)
	if err != nil {
		fail("DialLeader %s/%d: %v", *topic, *partition, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(*timeout))
	if _, err := conn.Seek(0, kafka.SeekStart); err != nil {
		fail("Seek to the first offset of %s/%d: %v", *topic, *partition, err)
	}
	n := 0
	for n < *expect {
		batch := conn.ReadBatch(1, 10<<20)
		for n < *expect {
			m, err := batch.ReadMessage()
			if err != nil {
				if err != io.EOF {
					batch.Close()
					fail("read %s/%d after %d messages: %v", *topic, *partition, n, err)
				}
				break
			}
			result(toOut(m))
			n++
		}
		if err := batch.Close(); err != nil && err != io.EOF {
			fail("fetch %s/%d after %d messages: %v", *topic, *partition, n, err)
		}
	}
	fmt.Printf("consumed %d messages from %s/%d\n", n, *topic, *partition)
}

// errorLog collects what a Reader logs as errors (it retries internally, forever).
type errorLog struct {
	mu    sync.Mutex
	lines []string
}

func (e *errorLog) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	line := strings.TrimSpace(string(p))
	e.lines = append(e.lines, line)
	if len(e.lines) <= 10 {
		fmt.Printf("reader error: %s\n", line)
	}
	return len(p), nil
}

func (e *errorLog) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.lines) > 5 {
		return strings.Join(e.lines[:5], "; ") + fmt.Sprintf("; ... (%d errors)", len(e.lines))
	}
	return strings.Join(e.lines, "; ")
}

func reader(errs *errorLog) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{*bootstrap},
		GroupID:           *group,
		Topic:             *topic,
		Dialer:            dialer(),
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           500 * time.Millisecond,
		HeartbeatInterval: time.Second,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  6 * time.Second,
		CommitInterval:    0, // synchronous: CommitMessages returns after the OffsetCommit
		ErrorLogger:       log.New(errs, "", 0),
	})
}

func doGroup() {
	errs := &errorLog{}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r := reader(errs)
	seen := map[string]bool{}
	end := map[int]int64{}
	for len(seen) < *expect {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			r.Close()
			fail("FetchMessage after %d of %d messages: %v; reader errors: %s", len(seen), *expect, err, errs)
		}
		id := fmt.Sprintf("%d/%d", m.Partition, m.Offset)
		if !seen[id] {
			seen[id] = true
			result(toOut(m))
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			r.Close()
			fail("CommitMessages %s: %v; reader errors: %s", id, err, errs)
		}
		if m.Offset+1 > end[m.Partition] {
			end[m.Partition] = m.Offset + 1
		}
	}
	if err := r.Close(); err != nil {
		fail("Reader.Close: %v", err)
	}
	fmt.Printf("group %s consumed and committed %d messages; checking the commits by resuming\n", *group, len(seen))

	// kafka-go has no public OffsetFetch: check the commits by what a new member of the
	// group reads first. One more message per partition; the group must resume exactly
	// there (the committed offset), not re-read anything and not skip.
	conn, err := dialer().DialContext(ctx, "tcp", *bootstrap)
	if err != nil {
		fail("dial: %v", err)
	}
	parts, err := conn.ReadPartitions(*topic)
	conn.Close()
	if err != nil {
		fail("ReadPartitions: %v", err)
	}
	for _, p := range parts {
		lc, err := dialer().DialLeader(ctx, "tcp", *bootstrap, *topic, p.ID)
		if err != nil {
			fail("DialLeader %s/%d: %v", *topic, p.ID, err)
		}
		lc.SetDeadline(time.Now().Add(*timeout))
		if _, err := lc.WriteMessages(kafka.Message{Key: []byte("resume-check"), Value: []byte(fmt.Sprint(p.ID))}); err != nil {
			fail("write resume-check message to %s/%d: %v", *topic, p.ID, err)
		}
		lc.Close()
	}
	r2 := reader(errs)
	defer r2.Close()
	resumed := map[string]int64{}
	var bad []string
	for len(resumed) < len(parts) {
		m, err := r2.FetchMessage(ctx)
		if err != nil {
			fail("second member: FetchMessage: %v (resumed so far %v); reader errors: %s", err, resumed, errs)
		}
		if string(m.Key) != "resume-check" {
			bad = append(bad, fmt.Sprintf("p%d: re-read offset %d (committed offset not honoured)", m.Partition, m.Offset))
			continue
		}
		resumed[fmt.Sprint(m.Partition)] = m.Offset
		if m.Offset != end[m.Partition] {
			bad = append(bad, fmt.Sprintf("p%d: resumed at %d, want %d", m.Partition, m.Offset, end[m.Partition]))
		}
	}
	committed := map[string]int64{}
	for p, o := range end {
		committed[fmt.Sprint(p)] = o
	}
	result(map[string]interface{}{"committed": committed, "resumed": resumed})
	if len(bad) > 0 {
		sort.Strings(bad)
		fail("committed offsets wrong: %s", strings.Join(bad, "; "))
	}
	fmt.Printf("committed offsets verified by resuming: %v\n", resumed)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: kafkago create|produce|consume|group -bootstrap H:P -topic T ...")
	}
	cmd := os.Args[1]
	flag.CommandLine.Parse(os.Args[2:])
	if *bootstrap == "" || *topic == "" {
		fail("-bootstrap and -topic are required")
	}
	fmt.Printf("kafka-go %s: topic %s\n", cmd, *topic)
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
