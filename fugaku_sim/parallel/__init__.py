"""fugaku_sim.parallel"""
