package setup

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Outcome is what a step did.
type Outcome string

const (
	OK        Outcome = "ok"        // a check passed
	Changed   Outcome = "changed"   // set-up created or updated something
	Unchanged Outcome = "unchanged" // set-up found it already as wanted
	Skipped   Outcome = "skipped"   // not applicable here; the note says why
	Failed    Outcome = "failed"    // the note names the cause and the fix
	// Warning: it works, but not as it should; the note says what, the fix
	// what to do. It does not fail the command.
	Warning Outcome = "warning"
)

// step is one line of output: "name: outcome: note".
type step struct {
	name    string
	outcome Outcome
	note    string // what was found or done; for a failure, the cause
	fix     string // for a failure: what to do about it
}

// reporter prints steps as they finish, aligned, one per line.
type reporter struct {
	w               io.Writer
	failed, changed int
}

// print writes the step's line and reports whether the step failed.
func (r *reporter) print(s step) bool {
	switch s.outcome {
	case Failed:
		r.failed++
	case Changed:
		r.changed++
	}
	line := fmt.Sprintf("%-18s %s", s.name+":", s.outcome)
	if s.note != "" {
		line += ": " + s.note
	}
	if s.fix != "" {
		line += "\n" + strings.Repeat(" ", 19) + "fix: " + s.fix
	}
	fmt.Fprintln(r.w, line)
	return s.outcome == Failed
}

func done(name string, changed bool, note string) step {
	if changed {
		return step{name: name, outcome: Changed, note: note}
	}
	return step{name: name, outcome: Unchanged, note: note}
}

func fail(name, cause, fix string) step {
	return step{name: name, outcome: Failed, note: cause, fix: fix}
}

// privilegeFix names the missing privilege for a 403, and otherwise says
// to read the reason.
func privilegeFix(r reply, privilege string) string {
	switch r.status {
	case http.StatusForbidden:
		return "the credentials lack the privilege " + privilege + "; grant it, or run setup as a more privileged user"
	case http.StatusUnauthorized:
		return "the credentials were refused: check --es-api-key or --es-username/--es-password"
	}
	return "see the reason above; then run setup again"
}
