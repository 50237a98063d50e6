package proxy

// The built-in sensitive query names, for redacthelp_test.go.
var (
	SensitiveQueryWords = sensitiveQueryWords
	SensitiveQueryNames = sensitiveQueryNames
)
