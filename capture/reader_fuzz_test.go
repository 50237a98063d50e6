package capture

import "testing"

// FuzzLineReader checks that the bounded, chunked reader splits any input
// exactly as the unbounded reference does, whatever the read sizes, and that
// no line is longer than the limit. Seeds: testdata/fuzz/FuzzLineReader.
func FuzzLineReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, max, chunk uint8) {
		limit := int(max%64) + 1
		r := &chunkReader{data: data, n: int(chunk) + 1}
		lines, pos := readLines(t, r, limit)
		want := referenceLines(data, limit)
		if len(lines) != len(want) {
			t.Fatalf("max %d chunk %d: got %d lines %+v, want %d %+v", limit, chunk+1, len(lines), lines, len(want), want)
		}
		for i := range lines {
			if lines[i] != want[i] {
				t.Fatalf("max %d chunk %d: line %d = %+v, want %+v", limit, chunk+1, i, lines[i], want[i])
			}
			if len(lines[i].text) > limit {
				t.Fatalf("line %d is %d bytes, over the limit %d", i, len(lines[i].text), limit)
			}
		}
		if pos.Offset != int64(len(data)) {
			t.Fatalf("final offset %d, want %d", pos.Offset, len(data))
		}
	})
}
