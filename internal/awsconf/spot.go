package awsconf

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// spotActionPath is where EC2 posts a spot interruption notice, about two minutes before
// it acts: {"action": "terminate", "time": "…"}; 404 until then.
const spotActionPath = "spot/instance-action"

// WatchInterruption polls this instance's metadata for a spot interruption notice every
// interval and sends the notice once on the returned channel ("terminate at TIME"). Off EC2, where no
// metadata service answers its first question, it stops at once and never sends.
func WatchInterruption(ctx context.Context, cfg aws.Config, interval time.Duration) <-chan string {
	notices := make(chan string, 1)
	c := imds.NewFromConfig(cfg, func(o *imds.Options) { o.Retryer = aws.NopRetryer{} })
	go func() {
		answered := false
		for {
			// Bounded: a metadata service that does not answer must not hold up the poll.
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			notice, err := spotNotice(qctx, c)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err == nil && notice != "":
				notices <- notice
				return
			case err == nil:
				answered = true
			case !answered:
				return // no metadata service: not on EC2
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	}()
	return notices
}

// spotNotice returns the pending interruption notice, "" when there is none.
func spotNotice(ctx context.Context, c *imds.Client) (string, error) {
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: spotActionPath})
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 4096))
	if err != nil {
		return "", err
	}
	var n struct{ Action, Time string }
	if json.Unmarshal(b, &n) == nil && n.Action != "" {
		return n.Action + " at " + n.Time, nil
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}
