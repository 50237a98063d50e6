package hooks

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// files are the hooks as installed: DIR/python goes on PYTHONPATH, and
// DIR/node/replaylink-hook.js is preloaded with NODE_OPTIONS.
//
//go:embed python/sitecustomize.py python/_replaylink_hook.py node/replaylink-hook.js
var files embed.FS

// Paths of the installed hooks, relative to the install directory.
const (
	pythonDir = "python"
	nodeHook  = "node/replaylink-hook.js"
	// NonceFile holds the nonce of an installation shared with another
	// container (see LoadOrCreateNonce).
	NonceFile = "nonce"
)

// Install writes the hooks into dir, replacing older versions, so that a
// backend started with Env(…, dir, …) loads them. Each file is written to a
// temporary name and renamed, so a backend starting meanwhile never reads
// half a file.
func Install(dir string) error {
	return fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("installing the runtime hooks in %s: %w", dir, err)
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("installing the runtime hooks in %s: %w", dir, err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("installing the runtime hooks in %s: %w", dir, err)
		}
		return nil
	})
}

// LoadOrCreateNonce returns the nonce kept in dir's NonceFile, making one
// when there is none. A sidecar's app container reads the same file
// (REPLAYLINK_HOOK_NONCE_FILE), so a restarted sidecar keeps the nonce the
// app already runs with.
func LoadOrCreateNonce(dir string) (Nonce, error) {
	path := filepath.Join(dir, NonceFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		n, err := ParseNonce(b)
		if err != nil {
			return n, fmt.Errorf("%s: %w (delete it to make a new one)", path, err)
		}
		return n, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Nonce{}, err
	}
	n := NewNonce()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return n, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(n.String()+"\n"), 0o644); err != nil {
		return n, err
	}
	return n, os.Rename(tmp, path)
}

// Env returns env with what makes a Python or Node process load the hooks
// installed in dir and mark its lines with nonce: dir/python first on
// PYTHONPATH, a --require of the Node hook after the user's NODE_OPTIONS,
// and REPLAYLINK_HOOK_NONCE. Other programs ignore all three.
func Env(env []string, dir string, nonce Nonce) []string {
	py := filepath.Join(dir, pythonDir)
	node := "--require=" + quoteNodeOption(filepath.Join(dir, filepath.FromSlash(nodeHook)))
	out := make([]string, 0, len(env)+3)
	var hadPy, hadNode bool
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "PYTHONPATH="):
			if v := kv[len("PYTHONPATH="):]; v != "" {
				kv = "PYTHONPATH=" + py + string(os.PathListSeparator) + v
			} else {
				kv = "PYTHONPATH=" + py
			}
			hadPy = true
		case strings.HasPrefix(kv, "NODE_OPTIONS="):
			if v := kv[len("NODE_OPTIONS="):]; v != "" {
				kv = "NODE_OPTIONS=" + v + " " + node
			} else {
				kv = "NODE_OPTIONS=" + node
			}
			hadNode = true
		case strings.HasPrefix(kv, "REPLAYLINK_HOOK_NONCE=") || strings.HasPrefix(kv, "REPLAYLINK_HOOK_NONCE_FILE="):
			continue // replaylink's own, never the environment's
		}
		out = append(out, kv)
	}
	if !hadPy {
		out = append(out, "PYTHONPATH="+py)
	}
	if !hadNode {
		out = append(out, "NODE_OPTIONS="+node)
	}
	return append(out, "REPLAYLINK_HOOK_NONCE="+nonce.String())
}

// FileEnv is what a backend that replaylink does not start sets to load
// the hooks installed in dir, with the nonce of dir's NonceFile.
func FileEnv(dir string) []string {
	return []string{
		"PYTHONPATH=" + filepath.Join(dir, pythonDir),
		"NODE_OPTIONS=--require=" + quoteNodeOption(filepath.Join(dir, filepath.FromSlash(nodeHook))),
		"REPLAYLINK_HOOK_NONCE_FILE=" + filepath.Join(dir, NonceFile),
	}
}

// quoteNodeOption quotes a path for NODE_OPTIONS, which splits at spaces
// and takes double quotes and backslash escapes.
func quoteNodeOption(p string) string {
	if !strings.ContainsAny(p, " \t\"\\") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}

// PythonIsolated says whether a command starts a Python interpreter with
// -I, -S or -E, which skip PYTHONPATH or sitecustomize: the hook then does
// not load, and that backend's lines keep the rules for unmarked lines.
func PythonIsolated(command []string) bool {
	if len(command) == 0 || !strings.HasPrefix(filepath.Base(command[0]), "python") {
		return false
	}
	args := command[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case !strings.HasPrefix(a, "-") || a == "-" || strings.HasPrefix(a, "--"):
			return false // the program, or a long option: no more short ones
		case a == "-W" || a == "-X":
			i++ // its value follows
			continue
		case strings.HasPrefix(a, "-W") || strings.HasPrefix(a, "-X"):
			continue
		}
		for _, c := range a[1:] {
			switch c {
			case 'I', 'S', 'E':
				return true
			case 'm', 'c':
				return false // the rest is the module or the program text
			}
		}
	}
	return false
}
