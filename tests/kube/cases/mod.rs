mod chart;
mod crds;
mod operator;
