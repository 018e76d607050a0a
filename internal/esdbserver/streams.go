package esdbserver

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sendBatch is how many records a subscription copies out of the log per
// lock.
const sendBatch = 256

// errInvalidPosition is EventStoreDB's answer to a $all read or
// subscription from inside a record.
var errInvalidPosition = status.Error(codes.InvalidArgument, "Trying to read from an invalid position.")

// Append implements Streams/Append: one options message, then the
// proposed events, then one answer.
func (s *Server) Append(rpc api.Streams_AppendServer) error {
	first, err := rpc.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append: first message carries no options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "append: empty stream name")
	}
	exp := appendExpectation(opts)
	var (
		events []proposed
		size   int
	)
	s.mu.Lock()
	maxAppend := s.maxAppend
	s.mu.Unlock()
	for {
		m, err := rpc.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		pm := m.GetProposedMessage()
		if pm == nil {
			return status.Error(codes.InvalidArgument, "append: message after options is not a proposed event")
		}
		e, err := proposedEvent(pm)
		if err != nil {
			return err
		}
		size += len(e.data) + len(e.meta)
		if maxAppend > 0 && size > maxAppend {
			return status.Errorf(codes.InvalidArgument, "maximum append size of %d exceeded", maxAppend)
		}
		events = append(events, e)
	}

	s.mu.Lock()
	fault := s.fault
	s.fault = NoFault
	switch fault {
	case FaultUnavailable:
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "esdbserver: injected fault: unavailable")
	case FaultStall:
		s.mu.Unlock()
		<-rpc.Context().Done()
		return status.FromContextError(rpc.Context().Err()).Err()
	}
	var res appendResult
	if len(events) > 0 {
		res = s.store.append(name, exp, events)
		s.appends++
	}
	s.mu.Unlock()

	if fault == FaultLoseResponse {
		s.DropConnections()
		return status.Error(codes.Unavailable, "esdbserver: injected fault: response lost")
	}
	return rpc.SendAndClose(appendResponse(opts, res, len(events) == 0))
}

func appendExpectation(opts *api.AppendReq_Options) expectation {
	switch opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		return expectation{kind: expectRevision, revision: opts.GetRevision()}
	case *api.AppendReq_Options_NoStream:
		return expectation{kind: expectNoStream}
	case *api.AppendReq_Options_StreamExists:
		return expectation{kind: expectExists}
	default:
		return expectation{kind: expectAny}
	}
}

func proposedEvent(pm *api.AppendReq_ProposedMessage) (proposed, error) {
	id, err := uuidFromProto(pm.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "append: event id: %v", err)
	}
	typ, ok := pm.GetMetadata()[metaType]
	if !ok {
		return proposed{}, status.Errorf(codes.InvalidArgument, "append: required metadata property %q is missing", metaType)
	}
	contentType, ok := pm.GetMetadata()[metaContentType]
	if !ok {
		return proposed{}, status.Errorf(codes.InvalidArgument, "append: required metadata property %q is missing", metaContentType)
	}
	return proposed{id: id, typ: typ, contentType: contentType, data: pm.GetData(), meta: pm.GetCustomMetadata()}, nil
}

func appendResponse(opts *api.AppendReq_Options, res appendResult, empty bool) *api.AppendResp {
	if res.wrong {
		w := &api.AppendResp_WrongExpectedVersion{}
		if res.current < 0 {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
			w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
		} else {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(res.current)}
			w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(res.current)}
		}
		switch opts.GetExpectedStreamRevision().(type) {
		case *api.AppendReq_Options_Revision:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: opts.GetRevision()}
			w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: opts.GetRevision()}
		case *api.AppendReq_Options_NoStream:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		case *api.AppendReq_Options_StreamExists:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
			w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
		default:
			w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
			w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
		}
		return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
	}
	ok := &api.AppendResp_Success{}
	if empty || res.last == nil {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: res.last.revision}
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: res.last.position, PreparePosition: res.last.position,
		}}
	}
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}}
}

// Delete implements Streams/Delete: a soft delete, which hides the
// stream's records from stream reads (they stay in $all) by writing
// truncate-before into the stream's metadata. Appends continue the
// revision numbers.
func (s *Server) Delete(_ context.Context, req *api.DeleteReq) (*api.DeleteResp, error) {
	opts := req.GetOptions()
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "delete: empty stream name")
	}
	var exp expectation
	switch opts.GetExpectedStreamRevision().(type) {
	case *api.DeleteReq_Options_Revision:
		exp = expectation{kind: expectRevision, revision: opts.GetRevision()}
	case *api.DeleteReq_Options_NoStream:
		exp = expectation{kind: expectNoStream}
	case *api.DeleteReq_Options_StreamExists:
		exp = expectation{kind: expectExists}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store.streams[name]
	if !exp.matches(st) {
		return nil, status.Errorf(codes.FailedPrecondition, "delete %q: wrong expected version", name)
	}
	tb := uint64(len(st.records))
	data, err := json.Marshal(map[string]uint64{"$tb": tb})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "delete %q: %v", name, err)
	}
	res := s.store.append("$$"+name, expectation{kind: expectAny}, []proposed{{
		id: uuid.New(), typ: "$metadata", contentType: "application/json", data: data,
	}})
	if st != nil {
		st.truncateBefore = tb
	}
	return &api.DeleteResp{PositionOption: &api.DeleteResp_Position_{Position: &api.DeleteResp_Position{
		CommitPosition: res.last.position, PreparePosition: res.last.position,
	}}}, nil
}

// Read implements Streams/Read: stream and $all reads, and subscriptions.
func (s *Server) Read(req *api.ReadReq, rpc api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read: no options")
	}
	f, err := newFilter(o.GetFilter())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "read: %v", err)
	}
	enc := encoder{stringIDs: o.GetUuidOption().GetString_() != nil}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	subscribe := o.GetSubscription() != nil
	if subscribe && backwards {
		return status.Error(codes.InvalidArgument, "read: subscriptions read forwards")
	}
	switch {
	case o.GetStream() != nil:
		so := o.GetStream()
		name := string(so.GetStreamIdentifier().GetStreamName())
		if name == "" {
			return status.Error(codes.InvalidArgument, "read: empty stream name")
		}
		if subscribe {
			return s.subscribeStream(rpc, name, so, enc)
		}
		return s.readStream(rpc, name, so, backwards, o.GetCount(), enc)
	case o.GetAll() != nil:
		if subscribe {
			return s.subscribeAll(rpc, o.GetAll(), f, enc)
		}
		return s.readAll(rpc, o.GetAll(), backwards, o.GetCount(), f, enc)
	default:
		return status.Error(codes.InvalidArgument, "read: neither a stream nor $all")
	}
}

// readStream answers a stream read with events only, or with
// stream-not-found: the client panics on anything else in a plain read.
func (s *Server) readStream(rpc api.Streams_ReadServer, name string, so *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, enc encoder) error {
	var from uint64
	fromEnd := false
	switch so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = so.GetRevision()
	case *api.ReadReq_Options_StreamOptions_End:
		fromEnd = true
	}
	s.mu.Lock()
	recs, ok := s.store.readStream(name, from, fromEnd, backwards, count)
	s.mu.Unlock()
	if !ok {
		return rpc.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	for _, r := range recs {
		if err := rpc.Send(enc.event(r, false)); err != nil {
			return err
		}
	}
	return nil
}

// readAll reads $all. Forwards from a position includes the record at
// that position; backwards from a position starts before it.
func (s *Server) readAll(rpc api.Streams_ReadServer, ao *api.ReadReq_Options_AllOptions, backwards bool, count uint64, f *filter, enc encoder) error {
	s.mu.Lock()
	log := s.store.log
	var start int
	switch ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Position:
		if !s.store.validPosition(ao.GetPosition().GetCommitPosition()) {
			s.mu.Unlock()
			return errInvalidPosition
		}
		start = s.store.indexFrom(ao.GetPosition().GetCommitPosition())
	case *api.ReadReq_Options_AllOptions_End:
		start = len(log)
	}
	s.mu.Unlock()
	var recs []*record
	if !backwards {
		for i := start; i < len(log) && uint64(len(recs)) < count; i++ {
			if f.match(log[i]) {
				recs = append(recs, log[i])
			}
		}
	} else {
		if _, fromStart := ao.GetAllOption().(*api.ReadReq_Options_AllOptions_Start); fromStart {
			start = 0
		}
		for i := start - 1; i >= 0 && uint64(len(recs)) < count; i-- {
			if f.match(log[i]) {
				recs = append(recs, log[i])
			}
		}
	}
	for _, r := range recs {
		if err := rpc.Send(enc.event(r, true)); err != nil {
			return err
		}
	}
	return nil
}

// subscribeStream follows one stream from after a revision (exclusive),
// from its start, or from its end.
func (s *Server) subscribeStream(rpc api.Streams_ReadServer, name string, so *api.ReadReq_Options_StreamOptions, enc encoder) error {
	var match func(*record) bool
	s.mu.Lock()
	start := 0
	switch so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		after := so.GetRevision()
		match = func(r *record) bool { return r.stream == name && r.revision > after }
	case *api.ReadReq_Options_StreamOptions_End:
		start = len(s.store.log)
		match = func(r *record) bool { return r.stream == name }
	default:
		match = func(r *record) bool { return r.stream == name }
	}
	s.mu.Unlock()
	return s.follow(rpc, start, match, 0, enc)
}

// subscribeAll follows $all from after a position (exclusive), from the
// start, or from the end, through an optional filter. Filtered
// subscriptions send checkpoints.
func (s *Server) subscribeAll(rpc api.Streams_ReadServer, ao *api.ReadReq_Options_AllOptions, f *filter, enc encoder) error {
	s.mu.Lock()
	start := 0
	switch ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Position:
		if !s.store.validPosition(ao.GetPosition().GetCommitPosition()) {
			s.mu.Unlock()
			return errInvalidPosition
		}
		start = s.store.indexAfter(ao.GetPosition().GetCommitPosition())
	case *api.ReadReq_Options_AllOptions_End:
		start = len(s.store.log)
	}
	s.mu.Unlock()
	checkpointEvery := 0
	if f != nil {
		checkpointEvery = f.checkpointEvery
	}
	return s.follow(rpc, start, f.match, checkpointEvery, enc)
}

// follow confirms a subscription, sends the matching records from log
// index start on, says when it has caught up, then sends new records as
// they are committed, until the client goes away or the server stops.
func (s *Server) follow(rpc api.Streams_ReadServer, start int, match func(*record) bool, checkpointEvery int, enc encoder) error {
	s.subscriptionOpened()
	defer s.subscriptionClosed()
	ctx := rpc.Context()
	if err := rpc.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	next, considered, caughtUp := start, 0, false
	for {
		s.mu.Lock()
		end := min(len(s.store.log), next+sendBatch)
		batch := s.store.log[next:end]
		changed := s.store.changed
		s.mu.Unlock()
		for _, r := range batch {
			next++
			if match(r) {
				if err := rpc.Send(enc.event(r, true)); err != nil {
					return err
				}
			}
			if checkpointEvery > 0 {
				considered++
				if considered >= checkpointEvery {
					considered = 0
					if err := rpc.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
						CommitPosition: r.position, PreparePosition: r.position,
					}}}); err != nil {
						return err
					}
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := rpc.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// encoder turns records into read responses.
type encoder struct {
	stringIDs bool
}

// event encodes r. Every event carries "type", "content-type" and
// "created": the client exits the process when "created" is missing.
func (e encoder) event(r *record, withPosition bool) *api.ReadResp {
	ev := &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               uuidProto(r.id, e.stringIDs),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.position,
			CommitPosition:   r.position,
			Metadata: map[string]string{
				metaType:        r.typ,
				metaContentType: r.contentType,
				metaCreated:     strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
	}
	if withPosition {
		ev.Position = &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.position}
	} else {
		ev.Position = &api.ReadResp_ReadEvent_NoPosition{NoPosition: &shared.Empty{}}
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: ev}}
}

func uuidProto(id [16]byte, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: uuid.UUID(id).String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

func uuidFromProto(p *shared.UUID) ([16]byte, error) {
	var id [16]byte
	switch {
	case p.GetStructured() != nil:
		binary.BigEndian.PutUint64(id[:8], uint64(p.GetStructured().GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(p.GetStructured().GetLeastSignificantBits()))
		return id, nil
	case p.GetString_() != "":
		u, err := uuid.Parse(p.GetString_())
		return u, err
	default:
		return id, errors.New("missing")
	}
}
