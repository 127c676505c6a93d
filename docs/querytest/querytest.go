// Package querytest holds the test that runs the DuckDB queries of docs/querying.md against files
// s3dest delivered. It is a module of its own so that DuckDB (cgo, its library linked in) burdens no
// service's binary.
package querytest
