"""`make load` and `make soak`: open-loop load and soak tests against the running
`rampart up` stack (docs/load-testing.md). Reports land in
`<RAMPART_HOME>/reports/load/<kind>-<UTC stamp>.json`; `rampart readiness` reads the newest."""
