package esdb

// ProtoConflictLDFlags is the linker flag that lets a binary link this
// package together with github.com/asynkron/protoactor-go/cluster. Both
// register a protobuf file named "gossip.proto"; by default the protobuf
// runtime panics at init when a binary holds two registrations of one file
// name. With this flag the conflict is logged instead:
//
//	go build -ldflags "-X google.golang.org/protobuf/reflect/protoregistry.conflictPolicy=warn" ./cmd/herald
//
// (the Makefile's LDFLAGS_PROTO).
// The same switch exists at run time, as the environment variable
// GOLANG_PROTOBUF_REGISTRATION_CONFLICT=warn; setting it from inside the
// program is too late (registration runs during package initialisation).
// Both are outside the protobuf runtime's compatibility promise, which is
// why TestGossipProtoClash checks them against the versions in go.mod.
const ProtoConflictLDFlags = "-X google.golang.org/protobuf/reflect/protoregistry.conflictPolicy=warn"
