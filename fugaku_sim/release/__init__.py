"""fugaku_sim.release"""
