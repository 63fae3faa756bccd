// Command confluent drives confluent-kafka-go (Debian's
// golang-github-confluentinc-confluent-kafka-go-dev, 0.11.6, on Debian's librdkafka)
// against a Kafka-compatible broker, for tests/python/test_go_clients.py.
//
//	confluent create  -bootstrap H:P -topic T -partitions N
//	confluent produce -bootstrap H:P -topic T -input FILE [-partition P|-1] [-compression none|gzip|snappy|lz4|zstd]
//	confluent consume -bootstrap H:P -topic T -partition P -expect N
//	confluent group   -bootstrap H:P -topic T -group G -expect N
//
// librdkafka negotiates versions with ApiVersions and writes v2 record batches.
// FILE is a JSON list of {"key": hex|null, "value": hex|null, "ts": ms}. Results are
// lines "RESULT {json}"; any failure exits 1 with "FAIL: ...".
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/kafka"
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
	partition   = flag.Int("partition", -1, "partition for produce (-1: librdkafka's partitioner) or consume")
	input       = flag.String("input", "", "JSON file of messages to produce")
	expect      = flag.Int("expect", 0, "messages to consume")
	compression = flag.String("compression", "none", "producer compression.codec")
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

func base() kafka.ConfigMap {
	c := kafka.ConfigMap{
		"bootstrap.servers": *bootstrap,
		"client.id":         "klamm-go-confluent",
	}
	if d := os.Getenv("KLAMM_GO_DEBUG"); d != "" {
		c["debug"] = d
	}
	return c
}

func toOut(m *kafka.Message) outMsg {
	o := outMsg{Partition: m.TopicPartition.Partition, Offset: int64(m.TopicPartition.Offset), Key: hexOrNil(m.Key), Value: hexOrNil(m.Value)}
	if m.TimestampType != kafka.TimestampNotAvailable && m.Timestamp.Unix() > 0 {
		ts := m.Timestamp.UnixNano() / int64(time.Millisecond)
		o.Ts = &ts
	}
	return o
}

func doCreate() {
	conf := base()
	a, err := kafka.NewAdminClient(&conf)
	if err != nil {
		fail("NewAdminClient: %v", err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := a.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: *topic, NumPartitions: *partitions, ReplicationFactor: 1}},
		kafka.SetAdminOperationTimeout(10*time.Second))
	if err != nil {
		fail("CreateTopics %s: %v", *topic, err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			fail("CreateTopics %s: %v", r.Topic, r.Error)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		md, err := a.GetMetadata(topic, false, 5000)
		if err == nil {
			if t, ok := md.Topics[*topic]; ok && t.Error.Code() == kafka.ErrNoError && len(t.Partitions) == *partitions {
				fmt.Printf("created topic %s with %d partitions\n", *topic, *partitions)
				result(map[string]interface{}{"topic": *topic, "partitions": len(t.Partitions)})
				return
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
	conf := base()
	conf["acks"] = "all"
	conf["compression.codec"] = *compression
	conf["linger.ms"] = 50
	conf["max.in.flight.requests.per.connection"] = 1
	conf["message.send.max.retries"] = 0
	p, err := kafka.NewProducer(&conf)
	if err != nil {
		fail("NewProducer: %v", err)
	}
	defer p.Close()
	dr := make(chan kafka.Event, len(in))
	part := kafka.PartitionAny
	if *partition >= 0 {
		part = int32(*partition)
	}
	for i, m := range in {
		msg := &kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: topic, Partition: part},
			Key:            unhex(m.Key),
			Value:          unhex(m.Value),
			Timestamp:      time.Unix(0, m.Ts*int64(time.Millisecond)),
		}
		if err := p.Produce(msg, dr); err != nil {
			fail("Produce message %d: %v", i, err)
		}
	}
	deadline := time.After(*timeout)
	for i := 0; i < len(in); i++ {
		select {
		case ev := <-dr:
			m, ok := ev.(*kafka.Message)
			if !ok {
				fail("unexpected delivery event %v", ev)
			}
			if m.TopicPartition.Error != nil {
				fail("delivery of message %d failed: %v", i, m.TopicPartition.Error)
			}
			result(map[string]interface{}{"partition": m.TopicPartition.Partition, "offset": int64(m.TopicPartition.Offset)})
		case <-deadline:
			fail("timed out waiting for delivery reports: %d of %d", i, len(in))
		}
	}
	fmt.Printf("produced %d messages to %s (compression %s)\n", len(in), *topic, *compression)
}

func consumer(extra kafka.ConfigMap) *kafka.Consumer {
	conf := base()
	for k, v := range extra {
		conf[k] = v
	}
	c, err := kafka.NewConsumer(&conf)
	if err != nil {
		fail("NewConsumer: %v", err)
	}
	return c
}

func doConsume() {
	c := consumer(kafka.ConfigMap{"group.id": "klamm-go-unused", "enable.auto.commit": false, "auto.offset.reset": "error"})
	defer c.Close()
	if err := c.Assign([]kafka.TopicPartition{{Topic: topic, Partition: int32(*partition), Offset: kafka.OffsetBeginning}}); err != nil {
		fail("Assign: %v", err)
	}
	deadline := time.Now().Add(*timeout)
	n := 0
	for n < *expect {
		if time.Now().After(deadline) {
			fail("timed out consuming %s/%d: %d of %d messages", *topic, *partition, n, *expect)
		}
		m, err := c.ReadMessage(200 * time.Millisecond)
		if err != nil {
			if ke, ok := err.(kafka.Error); ok && ke.Code() == kafka.ErrTimedOut {
				continue
			}
			fail("consume %s/%d after %d messages: %v", *topic, *partition, n, err)
		}
		result(toOut(m))
		n++
	}
	fmt.Printf("consumed %d messages from %s/%d\n", n, *topic, *partition)
}

func doGroup() {
	c := consumer(kafka.ConfigMap{
		"group.id":           *group,
		"enable.auto.commit": false,
		"auto.offset.reset":  "earliest",
		"session.timeout.ms": 6000,
	})
	defer c.Close()
	if err := c.Subscribe(*topic, nil); err != nil {
		fail("Subscribe: %v", err)
	}
	deadline := time.Now().Add(*timeout)
	end := map[int32]int64{}
	seen := map[string]bool{}
	for len(seen) < *expect {
		if time.Now().After(deadline) {
			fail("timed out: consumed %d of %d messages", len(seen), *expect)
		}
		m, err := c.ReadMessage(200 * time.Millisecond)
		if err != nil {
			if ke, ok := err.(kafka.Error); ok && ke.Code() == kafka.ErrTimedOut {
				continue
			}
			fail("consume after %d messages: %v", len(seen), err)
		}
		id := fmt.Sprintf("%d/%d", m.TopicPartition.Partition, m.TopicPartition.Offset)
		if !seen[id] {
			seen[id] = true
			result(toOut(m))
		}
		if _, err := c.CommitMessage(m); err != nil {
			fail("CommitMessage %s: %v", id, err)
		}
		if int64(m.TopicPartition.Offset)+1 > end[m.TopicPartition.Partition] {
			end[m.TopicPartition.Partition] = int64(m.TopicPartition.Offset) + 1
		}
	}
	md, err := c.GetMetadata(topic, false, 5000)
	if err != nil {
		fail("GetMetadata: %v", err)
	}
	var tps []kafka.TopicPartition
	for _, p := range md.Topics[*topic].Partitions {
		tps = append(tps, kafka.TopicPartition{Topic: topic, Partition: p.ID})
	}
	got, err := c.Committed(tps, 10000)
	if err != nil {
		fail("Committed: %v", err)
	}
	committed := map[string]int64{}
	var bad []string
	for _, tp := range got {
		off := int64(tp.Offset)
		if tp.Offset == kafka.OffsetInvalid {
			off = -1
		}
		committed[fmt.Sprint(tp.Partition)] = off
		want, ok := end[tp.Partition]
		if !ok {
			want = -1
		}
		if tp.Error != nil {
			bad = append(bad, fmt.Sprintf("p%d: %v", tp.Partition, tp.Error))
		} else if off != want {
			bad = append(bad, fmt.Sprintf("p%d: committed %d, want %d", tp.Partition, off, want))
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
		fail("usage: confluent create|produce|consume|group -bootstrap H:P -topic T ...")
	}
	cmd := os.Args[1]
	flag.CommandLine.Parse(os.Args[2:])
	if *bootstrap == "" || *topic == "" {
		fail("-bootstrap and -topic are required")
	}
	_, ver := kafka.LibraryVersion()
	fmt.Printf("confluent-kafka-go %s (librdkafka %s): topic %s\n", cmd, ver, *topic)
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
