// Package localrun is local tooling that runs the functions on local
// stand-ins; it never ships in a Lambda bootstrap. It provisions the
// template's stack on moto_server, plays the parts of AWS that call the
// functions (Lambda's SQS event source mapping, EventBridge Scheduler:
// Loops, Scheduler), runs the whole pipeline as a demo operated through the
// operator's tool (Demo), keeps a local stack up against the emulator or a
// real F&O (Up), and readies and reports one local invoke for cmd/invoke
// (Sandbox).
package localrun
