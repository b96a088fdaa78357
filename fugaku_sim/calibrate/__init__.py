"""fugaku_sim.calibrate"""
