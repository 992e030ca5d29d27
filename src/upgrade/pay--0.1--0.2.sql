-- pay 0.1 -> 0.2 (ALTER EXTENSION pay UPDATE TO '0.2').
\echo Use "ALTER EXTENSION pay UPDATE TO '0.2'" to load this file. \quit
