mod chart;
mod crds;
mod on_demand;
mod operator;
