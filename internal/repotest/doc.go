// Package repotest holds tests about the repository as a whole: every
// package has one doc comment, and the herald binary links nothing it
// must not.
package repotest
