//! Smoke run of the generator (filled in below).
