package events

import (
	"bytes"
	"fmt"
	"strings"
)

// Batch joins event payloads into the body of one delivery: a JSON array
// holding each payload's bytes unchanged.
func Batch(payloads [][]byte) []byte {
	n := 2
	for _, p := range payloads {
		n += len(p) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	buf.WriteByte('[')
	for i, p := range payloads {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(p)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

// BatchSize is len(Batch(payloads)) without building it.
func BatchSize(payloadBytes, count int) int {
	if count == 0 {
		return 2
	}
	return payloadBytes + count - 1 + 2
}

// Body shapes a batch for an endpoint's provider type: Herald's JSON array
// for the default type, an incoming-webhook message for chat providers.
func Body(providerType string, payloads [][]byte) ([]byte, error) {
	if providerType == ProviderNone {
		return Batch(payloads), nil
	}
	var lines []string
	for _, p := range payloads {
		s, err := Summarize(p)
		if err != nil {
			return nil, err
		}
		line := fmt.Sprintf("[%s] %s", s.Tailnet, s.Message)
		if s.URL != "" {
			line += " " + s.URL
		}
		lines = append(lines, line)
	}
	text := strings.Join(lines, "\n")
	switch providerType {
	case ProviderSlack, ProviderMattermost, ProviderGoogleChat:
		// Slack, Mattermost and Google Chat incoming webhooks all take {"text": ...}.
		return marshal(map[string]string{"text": text})
	case ProviderDiscord:
		// Discord's content is capped at 2,000 characters.
		return marshal(map[string]string{"content": truncate(text, discordMaxContent)})
	}
	return nil, fmt.Errorf("unknown provider type %q", providerType)
}

const discordMaxContent = 2000

func truncate(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max-1]) + "…"
}
