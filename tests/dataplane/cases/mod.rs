mod crash;
mod iterators;
mod records;
mod restart;
mod retention;
mod streams;
mod wire;
