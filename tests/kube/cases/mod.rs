mod crds;
mod operator;
