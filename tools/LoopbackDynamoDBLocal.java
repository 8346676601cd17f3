// Starts AWS DynamoDB Local with its HTTP connector bound to loopback only.
//
// DynamoDB Local has no -host option: its embedded Jetty listens on 0.0.0.0. This launcher builds the server
// exactly as DynamoDBLocal.jar's own main would (same command-line arguments: -inMemory, -sharedDb, -port, ...),
// then, before starting it, sets the host of every Jetty connector to 127.0.0.1 (or -Dddb.host=...).
//
// Used by scripts/emulators.sh, which compiles it once into .local-aws/launcher/ (javac) and runs it with
// DynamoDBLocal.jar and DynamoDBLocal_lib/* on the classpath. Without javac it can also be run as a single
// source file: java -cp "DynamoDBLocal.jar:DynamoDBLocal_lib/*" tools/LoopbackDynamoDBLocal.java -inMemory ...
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("ddb.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        if (proxy == null) {
            // -help (or invalid arguments): ServerRunner has already printed the usage.
            System.exit(1);
        }

        // The Jetty server is a private field of DynamoDBProxyServer; reach it by reflection.
        java.lang.reflect.Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);

        int bound = 0;
        for (Connector connector : jetty.getConnectors()) {
            if (connector instanceof ServerConnector) {
                ((ServerConnector) connector).setHost(host);
                bound++;
            }
        }
        if (bound == 0) {
            // Fail loudly rather than silently listening on every interface.
            throw new IllegalStateException("no Jetty ServerConnector found; refusing to start on 0.0.0.0");
        }

        try {
            proxy.start();
        } catch (Exception e) {
            // Jetty's non-daemon threads would keep the JVM alive after a failed start (e.g. the port is taken):
            // exit so that the caller sees the failure at once.
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
