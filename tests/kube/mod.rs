//! Operator tests against a real kube-apiserver and etcd (see `shardline_tests::kube`).

mod cases;
