// Command optiopay drives optiopay/kafka (Debian's golang-github-optiopay-kafka-dev, 2.1.1)
// against a Kafka-compatible broker, for tests/python/test_go_clients.py.
//
//	optiopay create  -bootstrap H:P -topic T -partitions N
//	optiopay produce -bootstrap H:P -topic T -input FILE [-partition P|-1] [-compression none|gzip|snappy]
//	optiopay consume -bootstrap H:P -topic T -partition P -expect N
//	optiopay group   -bootstrap H:P -topic T -group G -expect N
//
// optiopay asks ApiVersions (v0) and then uses min(its max, the broker's max) per API:
// Produce <= v2, Fetch <= v5, ListOffsets <= v2, Metadata <= v5, OffsetCommit <= v3,
// OffsetFetch <= v3, FindCoordinator <= v1; CreateTopics it always sends as v0. It
// writes message format magic 0 whatever the Produce version, and has no group
// membership: "group" consumes every partition with a partition consumer, then commits
// (OffsetCommit v3, generation -1: a simple, unmanaged group) and reads the commits back
// (OffsetFetch v3) with optiopay's own protocol structs. Its OffsetCoordinator can't be
// used against any Kafka >= 0.11: it looks the coordinator up with FindCoordinator v1 but
// leaves out v1's key_type byte (a malformed request), and commits with generation 0,
// which Kafka answers with ILLEGAL_GENERATION for a group that has no members.
// FILE is a JSON list of {"key": hex|null, "value": hex|null, "ts": ms}; magic 0 has no
// timestamps. Results are lines "RESULT {json}"; any failure exits 1 with "FAIL: ...".
// optiopay reads both a null and an empty key or value as nil (printed as null).
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"strings"
	"time"

	kafka "github.com/optiopay/kafka/v2"
	"github.com/optiopay/kafka/v2/proto"
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
	partition   = flag.Int("partition", -1, "partition for produce (-1: round robin) or consume")
	input       = flag.String("input", "", "JSON file of messages to produce")
	expect      = flag.Int("expect", 0, "messages to consume")
	compression = flag.String("compression", "none", "producer compression")
	timeout     = flag.Duration("timeout", 30*time.Second, "overall deadline for the step")
)

const clientID = "klamm-go-optiopay"

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

func dial() *kafka.Broker {
	conf := kafka.NewBrokerConf(clientID)
	conf.DialRetryLimit = 3
	conf.DialRetryWait = 200 * time.Millisecond
	conf.LeaderRetryLimit = 3
	conf.LeaderRetryWait = 200 * time.Millisecond
	conf.RetryErrLimit = 3
	conf.RetryErrWait = 200 * time.Millisecond
	conf.ReadTimeout = 10 * time.Second
	b, err := kafka.Dial([]string{*bootstrap}, conf)
	if err != nil {
		fail("Dial %s: %v", *bootstrap, err)
	}
	return b
}

func doCreate() {
	b := dial()
	defer b.Close()
	resp, err := b.CreateTopic([]proto.TopicInfo{{Topic: *topic, NumPartitions: int32(*partitions), ReplicationFactor: 1}}, 10*time.Second, false)
	if err != nil {
		fail("CreateTopic %s (%d partitions): %v", *topic, *partitions, err)
	}
	for _, te := range resp.TopicErrors {
		if te.Err != nil {
			fail("CreateTopic %s: topic error %v", te.Topic, te.Err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		meta, err := b.Metadata()
		if err == nil {
			for _, t := range meta.Topics {
				if t.Name == *topic && t.Err == nil && len(t.Partitions) == *partitions {
					fmt.Printf("created topic %s with %d partitions\n", *topic, *partitions)
					result(map[string]interface{}{"topic": *topic, "partitions": len(t.Partitions)})
					return
				}
			}
		}
		if time.Now().After(deadline) {
			fail("topic %s not in Metadata with %d partitions after create (err %v)", *topic, *partitions, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	b := dial()
	defer b.Close()
	conf := kafka.NewProducerConf()
	conf.RetryLimit = 2
	conf.RequestTimeout = 10 * time.Second
	switch *compression {
	case "none":
	case "gzip":
		conf.Compression = proto.CompressionGzip
	case "snappy":
		conf.Compression = proto.CompressionSnappy
	default:
		fail("unknown -compression %q", *compression)
	}
	p := b.Producer(conf)
	if *partition >= 0 {
		msgs := make([]*proto.Message, len(in))
		for i, m := range in {
			msgs[i] = &proto.Message{Key: unhex(m.Key), Value: unhex(m.Value)}
		}
		// One produce request: the offsets follow the input order.
		first, err := p.Produce(*topic, int32(*partition), msgs...)
		if err != nil {
			fail("Produce %d messages to %s/%d: %v", len(msgs), *topic, *partition, err)
		}
		for _, m := range msgs {
			result(map[string]interface{}{"partition": *partition, "offset": m.Offset})
		}
		fmt.Printf("produced %d messages to %s/%d from offset %d (compression %s)\n", len(msgs), *topic, *partition, first, *compression)
		return
	}
	count, err := b.PartitionCount(*topic)
	if err != nil {
		fail("PartitionCount %s: %v", *topic, err)
	}
	for i, m := range in {
		part := int32(i) % count
		off, err := p.Produce(*topic, part, &proto.Message{Key: unhex(m.Key), Value: unhex(m.Value)})
		if err != nil {
			fail("Produce message %d to %s/%d: %v", i, *topic, part, err)
		}
		result(map[string]interface{}{"partition": part, "offset": off})
	}
	fmt.Printf("produced %d messages round robin over %d partitions of %s\n", len(in), count, *topic)
}

func consumePartition(b *kafka.Broker, part int32, want int, deadline time.Time, out func(outMsg)) int {
	conf := kafka.NewConsumerConf(*topic, part)
	conf.StartOffset = kafka.StartOffsetOldest
	conf.RetryLimit = 20 // ErrNoData after ~2 s of empty fetches
	conf.RetryWait = 50 * time.Millisecond
	conf.RetryErrLimit = 3
	conf.RetryErrWait = 200 * time.Millisecond
	conf.RequestTimeout = 100 * time.Millisecond
	c, err := b.Consumer(conf)
	if err != nil {
		fail("Consumer %s/%d: %v", *topic, part, err)
	}
	n := 0
	for n < want {
		if time.Now().After(deadline) {
			fail("timed out consuming %s/%d: %d of %d messages", *topic, part, n, want)
		}
		m, err := c.Consume()
		if err == kafka.ErrNoData {
			continue // nothing new within the retry limit: poll again until the deadline
		}
		if err != nil {
			fail("Consume %s/%d after %d messages: %v", *topic, part, n, err)
		}
		out(outMsg{Partition: part, Offset: m.Offset, Key: hexOrNil(m.Key), Value: hexOrNil(m.Value)})
		n++
	}
	return n
}

func doConsume() {
	b := dial()
	defer b.Close()
	n := consumePartition(b, int32(*partition), *expect, time.Now().Add(*timeout), func(o outMsg) { result(o) })
	fmt.Printf("consumed %d messages from %s/%d\n", n, *topic, *partition)
}

// roundTrip sends one request with optiopay's own structs on a fresh connection and
// returns the raw response (size and correlation id included, as optiopay's readers want).
func roundTrip(addr string, req proto.Request, version int16) ([]byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	proto.SetVersion(req.GetHeader(), version)
	proto.SetCorrelationID(req.GetHeader(), 1)
	if _, err := req.WriteTo(conn); err != nil {
		return nil, err
	}
	_, body, err := proto.ReadResp(bufio.NewReader(conn))
	return body, err
}

// findCoordinator asks FindCoordinator v0. (optiopay's own coordinator lookup sends v1
// without the v1 key_type field, which Kafka, like any strict parser, refuses.)
func findCoordinator() (string, error) {
	req := &proto.ConsumerMetadataReq{RequestHeader: proto.RequestHeader{ClientID: clientID}, ConsumerGroup: *group}
	body, err := roundTrip(*bootstrap, req, proto.KafkaV0)
	if err != nil {
		return "", fmt.Errorf("FindCoordinator v0: %v", err)
	}
	resp, err := proto.ReadVersionedConsumerMetadataResp(bytes.NewReader(body), proto.KafkaV0)
	if err != nil {
		return "", fmt.Errorf("decode FindCoordinator v0 response: %v", err)
	}
	if resp.Err != nil {
		return "", fmt.Errorf("FindCoordinator: %v", resp.Err)
	}
	return net.JoinHostPort(resp.CoordinatorHost, fmt.Sprint(resp.CoordinatorPort)), nil
}

// commitSimple commits offsets for a group without members (generation -1, no member id)
// with OffsetCommit v3, what optiopay negotiates with Kafka 3.9.
func commitSimple(coord string, offsets map[int32]int64) error {
	var parts []proto.OffsetCommitReqPartition
	for p, o := range offsets {
		parts = append(parts, proto.OffsetCommitReqPartition{ID: p, Offset: o})
	}
	req := &proto.OffsetCommitReq{
		RequestHeader:     proto.RequestHeader{ClientID: clientID},
		ConsumerGroup:     *group,
		GroupGenerationID: -1,
		RetentionTime:     -1,
		Topics:            []proto.OffsetCommitReqTopic{{Name: *topic, Partitions: parts}},
	}
	body, err := roundTrip(coord, req, proto.KafkaV3)
	if err != nil {
		return fmt.Errorf("OffsetCommit v3: %v", err)
	}
	resp, err := proto.ReadVersionedOffsetCommitResp(bytes.NewReader(body), proto.KafkaV3)
	if err != nil {
		return fmt.Errorf("decode OffsetCommit v3 response: %v", err)
	}
	var bad []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Err != nil {
				bad = append(bad, fmt.Sprintf("%s/%d: %v", t.Name, p.ID, p.Err))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("OffsetCommit errors: %s", strings.Join(bad, "; "))
	}
	return nil
}

// fetchCommitted reads the group's committed offsets with OffsetFetch v3.
func fetchCommitted(coord string, parts []int32) (map[int32]int64, error) {
	req := &proto.OffsetFetchReq{
		RequestHeader: proto.RequestHeader{ClientID: clientID},
		ConsumerGroup: *group,
		Topics:        []proto.OffsetFetchReqTopic{{Name: *topic, Partitions: parts}},
	}
	body, err := roundTrip(coord, req, proto.KafkaV3)
	if err != nil {
		return nil, fmt.Errorf("OffsetFetch v3: %v", err)
	}
	resp, err := proto.ReadVersionedOffsetFetchResp(bytes.NewReader(body), proto.KafkaV3)
	if err != nil {
		return nil, fmt.Errorf("decode OffsetFetch v3 response: %v", err)
	}
	if resp.Err != nil {
		return nil, fmt.Errorf("OffsetFetch: %v", resp.Err)
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Err != nil {
				return nil, fmt.Errorf("OffsetFetch %s/%d: %v", t.Name, p.ID, p.Err)
			}
			if t.Name == *topic {
				out[p.ID] = p.Offset
			}
		}
	}
	return out, nil
}

func doGroup() {
	b := dial()
	defer b.Close()
	count, err := b.PartitionCount(*topic)
	if err != nil {
		fail("PartitionCount %s: %v", *topic, err)
	}
	deadline := time.Now().Add(*timeout)
	end := map[int32]int64{}
	total := 0
	for p := int32(0); p < count; p++ {
		first, err := b.OffsetEarliest(*topic, p)
		if err != nil {
			fail("OffsetEarliest %s/%d: %v", *topic, p, err)
		}
		last, err := b.OffsetLatest(*topic, p)
		if err != nil {
			fail("OffsetLatest %s/%d: %v", *topic, p, err)
		}
		total += consumePartition(b, p, int(last-first), deadline, func(o outMsg) {
			result(o)
			end[o.Partition] = o.Offset + 1
		})
	}
	if total != *expect {
		fail("consumed %d messages over %d partitions, want %d", total, count, *expect)
	}
	coord, err := findCoordinator()
	if err != nil {
		fail("group %s: %v", *group, err)
	}
	if err := commitSimple(coord, end); err != nil {
		fail("commit %v for group %s: %v", end, *group, err)
	}
	fmt.Printf("committed %v for group %s at coordinator %s; reading back\n", end, *group, coord)
	var parts []int32
	for p := int32(0); p < count; p++ {
		parts = append(parts, p)
	}
	got, err := fetchCommitted(coord, parts)
	if err != nil {
		fail("read back the commits of group %s: %v", *group, err)
	}
	committed := map[string]int64{}
	var bad []string
	for _, p := range parts {
		off, ok := got[p]
		if !ok {
			bad = append(bad, fmt.Sprintf("p%d: missing from OffsetFetch", p))
			continue
		}
		committed[fmt.Sprint(p)] = off
		want, ok := end[p]
		if !ok {
			want = -1
		}
		if off != want {
			bad = append(bad, fmt.Sprintf("p%d: committed %d, want %d", p, off, want))
		}
	}
	result(map[string]interface{}{"committed": committed})
	if len(bad) > 0 {
		fail("committed offsets wrong: %s", strings.Join(bad, "; "))
	}
	fmt.Printf("committed offsets verified: %v\n", committed)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: optiopay create|produce|consume|group -bootstrap H:P -topic T ...")
	}
	cmd := os.Args[1]
	flag.CommandLine.Parse(os.Args[2:])
	if *bootstrap == "" || *topic == "" {
		fail("-bootstrap and -topic are required")
	}
	fmt.Printf("optiopay %s: topic %s\n", cmd, *topic)
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
