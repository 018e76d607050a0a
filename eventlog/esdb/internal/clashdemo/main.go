//go:build clashdemo

// Command clash links github.com/asynkron/protoactor-go/cluster and the
// EventStoreDB client into one binary. Both register a protobuf file named
// "gossip.proto", so the binary panics at init unless it is built with
// esdb.ProtoConflictLDFlags. TestGossipProtoClash builds and runs it.
//
// It sits behind the clashdemo build tag, not in testdata, so that go mod
// tidy (which reads every build tag but no testdata) keeps cluster's
// dependencies in go.sum, while ./... patterns never build it.
package main

import (
	"fmt"

	_ "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	_ "github.com/asynkron/protoactor-go/cluster"
)

// started is what the program prints once it is past package init.
const started = "clash: started"

func main() {
	fmt.Println(started)
}
