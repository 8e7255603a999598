mod crash;
mod iterators;
mod records;
mod reshard;
mod restart;
mod retention;
mod streams;
mod wire;
