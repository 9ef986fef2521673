package orchestrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/pricing"
	"ec2kit/internal/schedule"
)

// run drives the sessions in rounds until every key is settled or no node is left. A round
// runs one countpass per live node; it normally ends with the job. A new round starts only
// when a node died after some survivor's countpass had already finished, bringing keys back.
// It returns why each dead node died.
func (j *job) run(ctx context.Context, nodes []*node) map[string]string {
	died := map[string]string{}
	var mu sync.Mutex
	for ctx.Err() == nil && !j.sched.Complete() && j.sched.Alive() > 0 {
		before := j.sched.Outcome()
		var wg sync.WaitGroup
		for _, n := range nodes {
			mu.Lock()
			_, dead := died[n.id]
			mu.Unlock()
			if dead {
				continue
			}
			wg.Go(func() {
				err := j.session(ctx, n)
				if err == nil || ctx.Err() != nil {
					return
				}
				mu.Lock()
				died[n.id] = err.Error()
				mu.Unlock()
				n.conn.Close() // a hung link must not keep anything waiting
				back := j.sched.Dead(n.id)
				j.prog.Forget(n.id)
				j.prog.Printf("orchestrate: %s is out of the job (%v); redoing its %d key(s) on the survivors\n",
					n.label, strings.TrimPrefix(err.Error(), n.id+": "), len(back))
			})
		}
		wg.Wait()
		if after := j.sched.Outcome(); len(after.Done)+len(after.Failed) == len(before.Done)+len(before.Failed) &&
			len(after.Dead) == len(before.Dead) {
			break // no progress and nobody died: nothing a new round could change
		}
	}
	return died
}

// report prints the final line and turns the outcome into the exit status.
func (j *job) report(ctx context.Context, wall time.Duration, nodeCount int, died map[string]string, unreachable []string) error {
	o := j.sched.Outcome()
	total := len(j.items)
	// Results kept from an earlier run cost nothing now: they are not part of the rate.
	worked := o.DoneBytes - j.adoptedBytes
	fmt.Fprintf(j.prog.w, "orchestrate %s (job %s): %d/%d items, %s in %.1fs (%s/s) on %d node(s)",
		j.opts.Step, j.name, len(o.Done), total, human(float64(worked)), wall.Seconds(),
		human(float64(worked)/wall.Seconds()), nodeCount-len(died)-len(unreachable))
	if j.adopted > 0 {
		fmt.Fprintf(j.prog.w, ", %d kept from an earlier run", j.adopted)
	}
	// The tail: how long the job ran on after its last item started, while nodes that
	// had nothing left waited for the slowest.
	if last := j.sched.LastStart(); !last.IsZero() && len(o.Done) > 1 {
		fmt.Fprintf(j.prog.w, ", the last item started %.1fs before the end", time.Since(last).Seconds())
	}
	var skipped int64
	j.skipped.Range(func(_, v any) bool { skipped += v.(*atomic.Int64).Load(); return true })
	if skipped > 0 {
		fmt.Fprintf(j.prog.w, "; skipped %d row(s) too short to hold the column", skipped)
	}
	if len(died)+len(unreachable) > 0 {
		fmt.Fprintf(j.prog.w, "; %d node(s) lost: %s", len(died)+len(unreachable),
			strings.Join(append(slices.Sorted(maps.Keys(died)), unreachable...), ", "))
	}
	if ctx.Err() == nil {
		fmt.Fprintf(j.prog.w, "; %s", j.cost(ctx, wall))
	}
	fmt.Fprintln(j.prog.w)
	if ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted: re-run the same command to finish (done keys are kept)")
	}
	var problems []string
	code := cli.ExitOK
	unfinished := append(o.Unfinished, j.missing...)
	if len(unfinished) > 0 {
		code = cli.ExitUnreachable
		problems = append(problems, fmt.Sprintf("%d item(s) unfinished: no live node could do them: %s",
			len(unfinished), keyList(unfinished)))
	}
	if len(o.Failed) > 0 {
		code = cli.Worst(code, cli.ExitFailed)
		var fl []string
		for _, k := range slices.Sorted(maps.Keys(o.Failed)) {
			fl = append(fl, fmt.Sprintf("%s: %s", k, o.Failed[k]))
		}
		problems = append(problems, fmt.Sprintf("%d item(s) failed:\n  %s", len(fl), strings.Join(fl, "\n  ")))
	}
	if code == cli.ExitOK {
		return nil
	}
	err := cli.Errorf(code, "%s", strings.Join(problems, "\n"))
	if len(unfinished) > 0 {
		hint := "re-run the same command (finished keys are skipped), with more nodes if some died"
		if j.opts.Step == nodejob.Count {
			hint = "their downloaded data is gone with its node: re-run `orchestrate download`, then `orchestrate count`"
		}
		return cli.WithHint(err, hint)
	}
	return err
}

// keyList names up to ten keys.
func keyList(ks []schedule.Key) string {
	var names []string
	for i, k := range ks {
		if i == 10 {
			names = append(names, fmt.Sprintf("... and %d more", len(ks)-10))
			break
		}
		names = append(names, fmt.Sprintf("%q", k.Name))
	}
	return strings.Join(names, ", ")
}

// cost prices the fleet's time over the job: every instance it ran on, lost ones too (EC2
// bills them until they end), for the wall time.
func (j *job) cost(ctx context.Context, wall time.Duration) pricing.Cost {
	uses := make([]pricing.Use, len(j.insts))
	for i, in := range j.insts {
		uses[i] = pricing.Use{Type: in.Type, Zone: in.Zone, Spot: in.Lifecycle == "spot", For: wall}
	}
	return pricing.Of(ctx, uses)
}
