package unpack

import (
	"path"
	"strings"
	"testing"
)

// FuzzSafeName: a zip entry name accepted for writing is a clean relative
// path: no "..", "." or empty folder, not absolute, no control characters,
// so prefix+name never leaves the prefix (zip slip).
func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"Customer groups.csv", "sub/x.csv", "../x", "..", ".", "/abs", `\abs`, `..\..\x`, "a/../../x", "a/./b", "a//b",
		"x\x00", "x\x7f", `C:\x.csv`, "C:/x", "~/x", "a/..", "...", "..a", "a..", "\u2025/x", "ü€"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, ok := safeName(name)
		if !ok {
			return
		}
		if rel == "" || strings.HasPrefix(rel, "/") || path.Clean(rel) != rel || strings.ContainsAny(rel, "\\\x00") {
			t.Fatalf("safeName(%q) = %q", name, rel)
		}
		for _, seg := range strings.Split(rel, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("safeName(%q) = %q has a %q segment", name, rel, seg)
			}
		}
		for _, r := range rel {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("safeName(%q) = %q holds a control character", name, rel)
			}
		}
		const prefix = "outbound/job/x/"
		if !strings.HasPrefix(path.Clean(prefix+rel), strings.TrimSuffix(prefix, "/")+"/") {
			t.Fatalf("prefix + %q leaves the prefix", rel)
		}
		if n := fileName(name); n == "" || strings.Contains(n, "/") {
			t.Fatalf("fileName(%q) = %q", name, n)
		}
	})
}
