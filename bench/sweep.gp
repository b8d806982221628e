# quanta — bench/sweep.gp: draw the sweep over N that `bench_vmem --sweep
# FILE` writes (ci/bench: build/bench/sweep.dat -> build/bench/sweep.svg).
#
# The file: '#' comment lines, a header row "N W1-ring W1-instant
# W2-bestfit", then one row per N of ns per pair (NaN: not run).  One line per
# workload, N on a log-x axis, ns/pair on y.  The y axis turns logarithmic
# when the largest figure is over 20 times the smallest: a policy whose cost
# grows with N would otherwise flatten the others into the x axis.
#
#   gnuplot -e "datafile='build/bench/sweep.dat'; outfile='build/bench/sweep.svg'" bench/sweep.gp

if (!exists("datafile")) datafile = 'build/bench/sweep.dat'
if (!exists("outfile")) outfile = 'build/bench/sweep.svg'

# The smallest and largest figure over the three columns; a column that
# did not run (all NaN) leaves STATS_* undefined and is passed over.
ymin = NaN
ymax = NaN
do for [col = 2:4] {
	undefine STATS_*
	stats datafile using col nooutput
	if (exists("STATS_max")) {
		ymax = (ymax != ymax || STATS_max > ymax) ? STATS_max : ymax
		ymin = (ymin != ymin || STATS_min < ymin) ? STATS_min : ymin
	}
}

set terminal svg size 900,560 dynamic enhanced font 'sans,13' background rgb 'white'
set output outfile
set title 'quanta vmem: cost of a vmem\_free + vmem\_alloc pair with N segments live (median of 3)'
set xlabel 'N, live segments (log scale)'
set logscale x 10
set format x '10^{%L}'
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
set grid xtics ytics mxtics
set key top left autotitle columnheader
if (ymin > 0 && ymax / ymin > 20) {
	set logscale y 10
	set ylabel 'ns per pair (log scale)'
} else {
	set yrange [0:*]
	set ylabel 'ns per pair'
}
plot for [col = 2:4] datafile using 1:col with linespoints linewidth 2 pointtype 7 pointsize 0.8
