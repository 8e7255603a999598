mod crds;
